#!/usr/bin/env bash
# CI's second step after `make image`: the one image, pushed under each service's
# repository (the catalogue's `image`), with the same tag. Every repository gets the same
# digest; the digests are printed, one line per repository ("<repository> sha256:...").
#
#   tools/push_image.sh [--dry-run] IMAGE DESTINATION TAG
#     --dry-run    print "<repository> <reference>" for each push, and push nothing
#     IMAGE        the local image (make image's IMAGE)
#     DESTINATION  where the repositories are, as a containers-transports prefix:
#                  docker://<account>.dkr.ecr.<region>.amazonaws.com/valuecanvas-<env>
#                  (after `buildah login` with ECR's token), or oci:<folder> to try it here
#     TAG          the tag to push (CI: the commit), then committed to apps/environments/
#
# Environment: PYTHON (the venv's python, to read the catalogue); REPOSITORIES, to push to
# some of the catalogue's repositories only (space-separated; e.g. to finish a push that
# a network error stopped half-way). A name the catalogue does not have is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=false
if [ "${1:-}" = --dry-run ]; then DRY_RUN=true; shift; fi
IMAGE=${1:?IMAGE}
DESTINATION=${2:?DESTINATION}
TAG=${3:?TAG}
[ "$TAG" != latest ] || { echo "push_image: the tag must not be latest" >&2; exit 1; }
buildah=(buildah --storage-driver vfs)

catalogue=$("${PYTHON:-.venv/bin/python}" -c \
  'from valuecanvas.catalogue import catalogue; print(*sorted({e.image for e in catalogue().values()}))')
repositories=${REPOSITORIES:-$catalogue}
for repository in $repositories; do
  [[ " $catalogue " == *" $repository "* ]] || {
    echo "push_image: REPOSITORIES: $repository is no service's repository (the catalogue has: $catalogue)" >&2
    exit 1
  }
done
if $DRY_RUN; then
  for repository in $repositories; do echo "$repository $DESTINATION/$repository:$TAG"; done
  exit 0
fi
digests=$(mktemp -d)
trap 'rm -rf "$digests"' EXIT
for repository in $repositories; do
  "${buildah[@]}" push --quiet --digestfile "$digests/$repository" "$IMAGE" \
    "$DESTINATION/$repository:$TAG" </dev/null >/dev/null
  echo "$repository $(cat "$digests/$repository")"
done
