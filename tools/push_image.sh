#!/usr/bin/env bash
# CI's second step after `make image`: the one image, pushed under each service's
# repository (the catalogue's `image`), with the same tag. Every repository gets the same
# digest; the digests are printed, one line per repository ("<repository> sha256:...").
#
#   tools/push_image.sh IMAGE DESTINATION TAG
#     IMAGE        the local image (make image's IMAGE)
#     DESTINATION  where the repositories are, as a containers-transports prefix:
#                  docker://<account>.dkr.ecr.<region>.amazonaws.com/valuecanvas-<env>
#                  (after `buildah login` with ECR's token), or oci:<folder> to try it here
#     TAG          the tag to push (CI: the commit), then committed to apps/environments/
#
# Environment: PYTHON (the venv's python, to read the catalogue).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:?IMAGE}
DESTINATION=${2:?DESTINATION}
TAG=${3:?TAG}
[ "$TAG" != latest ] || { echo "push_image: the tag must not be latest" >&2; exit 1; }
buildah=(buildah --storage-driver vfs)

repositories=$("${PYTHON:-.venv/bin/python}" -c \
  'from valuecanvas.catalogue import catalogue; print(*sorted({e.image for e in catalogue().values()}))')
digests=$(mktemp -d)
trap 'rm -rf "$digests"' EXIT
for repository in $repositories; do
  "${buildah[@]}" push --quiet --digestfile "$digests/$repository" "$IMAGE" \
    "$DESTINATION/$repository:$TAG" </dev/null >/dev/null
  echo "$repository $(cat "$digests/$repository")"
done
