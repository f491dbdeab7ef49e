#!/bin/sh
# usage: private_ns.sh COMMAND [ARGS...]
# Run COMMAND as root in a private mount namespace where mounts under
# /dev/shm stay private (they vanish with the namespace). Plain `unshare -m`
# makes / private, which fails in a chroot whose / is no mount point (the
# fresh Debian of ../shared/tools/fresh-machine.sh: "cannot change root
# filesystem propagation"); /dev/shm is a mount point there and on a booted
# machine alike. Tests that mount (tmpfs for a full disk, a read-only bind)
# do it only under a folder of dt_test_mount_dir() (/dev/shm/dt-mnt-*).
exec unshare -m --propagation unchanged sh -c 'mount --make-rprivate /dev/shm && exec "$@"' sh "$@"
