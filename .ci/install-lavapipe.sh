#!/usr/bin/env bash
# Installs Mesa 25's lavapipe (Vulkan on the CPU) from bookworm-backports when no Vulkan ICD is
# present. Debian 12's own Mesa 22.3 gives Dawn no adapter, so backports are required.
set -euo pipefail
# Without FORCE=1, a machine that already has a lavapipe or NVIDIA ICD is left alone. (.ci/run sets
# FORCE=1 after Dawn found no adapter: Debian 12's own lavapipe is too old for Dawn.)
if [ "${FORCE:-0}" != 1 ] && ls /usr/share/vulkan/icd.d/lvp_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  echo "install-lavapipe: a Vulkan ICD is already installed"; exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ -f /etc/apt/sources.list.d/debian.sources ] && ! grep -q bookworm-backports /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null; then
  # Same archive and component as the existing bookworm entry.
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
elif [ ! -f /etc/apt/sources.list.d/debian.sources ] && ! grep -rq bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
