#!/usr/bin/env bash
# `make image`: the services' image, built by buildah from ./Containerfile with no daemon and
# no registry. Three steps, the first two cached outside the checkout:
#   1. a Debian base made once with debootstrap from the Debian mirror (no registry can be
#      pulled from here), imported into buildah's storage as localhost/valuecanvas-base;
#   2. build/wheels/: the wheels of requirements.runtime.lock (checked against its hashes)
#      and the project's own wheel, so that the build itself needs no network;
#   3. buildah build, with the base passed by digest as BASE_IMAGE.
# Environment: IMAGE (the tag to build), CACHE_DIR, UV, UV_PIP (from the Makefile), and
# BASE_IMAGE: given (CI: the official python:3.11-slim-bookworm@sha256:...), step 1 is
# skipped and buildah pulls that base; it must name a digest.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/valuecanvas:dev}
SUITE=bookworm  # the Debian release of the official python:3.11-slim-bookworm base
BASE=localhost/valuecanvas-base:$SUITE
ROOTFS=${CACHE_DIR:?}/base-$SUITE
buildah=(buildah --storage-driver vfs)

missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "make image needs ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "image: installing ${missing[*]} (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "${BASE_IMAGE:-}" ]; then
  [[ $BASE_IMAGE == *@sha256:* ]] || { echo "BASE_IMAGE must be pinned by digest (name@sha256:...), got $BASE_IMAGE" >&2; exit 1; }
elif ! "${buildah[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  if [ ! -f "$ROOTFS.complete" ]; then
    echo "image: making the Debian $SUITE base with debootstrap (about a minute, once)"
    rm -rf "$ROOTFS" "$ROOTFS.tmp"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$ROOTFS.tmp" http://deb.debian.org/debian >/dev/null
    rm -rf "$ROOTFS.tmp/var/cache/apt/archives/"*.deb "$ROOTFS.tmp/var/lib/apt/lists/"*
    mv "$ROOTFS.tmp" "$ROOTFS"
    touch "$ROOTFS.complete"
  fi
  container=$("${buildah[@]}" from scratch)
  "${buildah[@]}" copy --quiet "$container" "$ROOTFS/" / >/dev/null
  "${buildah[@]}" config --env LANG=C.UTF-8 --cmd /bin/sh "$container"
  "${buildah[@]}" commit --quiet "$container" "$BASE" >/dev/null
  "${buildah[@]}" rm "$container" >/dev/null
fi
if [ -z "${BASE_IMAGE:-}" ]; then
  BASE_IMAGE=$BASE@$("${buildah[@]}" images --format '{{.Digest}}' "$BASE")
fi

rm -rf build/wheels && mkdir -p build/wheels
"${UV_PIP:?}" download --quiet --disable-pip-version-check --only-binary=:all: --require-hashes \
  --no-deps -r requirements.runtime.lock -d build/wheels 2> >(grep -v "^WARNING: Location" >&2)
"${UV:?}" build --quiet --wheel --no-build-isolation --python .venv/bin/python --out-dir build/wheels .

"${buildah[@]}" build --quiet --isolation chroot --file Containerfile \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$IMAGE" . </dev/null >/dev/null
echo "image: $IMAGE (base $BASE_IMAGE)"
