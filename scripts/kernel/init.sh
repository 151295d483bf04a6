#!/bin/sh
# /init of the Portalis kernel-test initramfs (built by test/kernel/harness/prepare.ts; busybox).
#
# Mounts the guest kernel's modules (9p tag `modules`), the host's root (9p tag `hostroot`,
# read-only) under a tmpfs overlay, and the run folder (9p tag `results`, read-write, at the same
# path as on the host), then runs stage 2 (scripts/kernel/stage2.sh, named in the run folder's
# run.env) chrooted into the overlay, and powers off. The run folder is `portalis.run=` on the
# kernel command line.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "portalis-init: $*" > /dev/console
  poweroff -f
}

RUN_DIR=
for arg in $(cat /proc/cmdline); do
  case "$arg" in portalis.run=*) RUN_DIR="${arg#portalis.run=}" ;; esac
done
[ -n "$RUN_DIR" ] || fail "no portalis.run= on the kernel command line"

modprobe virtio_pci && modprobe 9pnet_virtio && modprobe 9p || fail "cannot load the 9p modules"
# cache=loose: both read-only exports do not change while the guest runs, and uncached 9p
# lookups dominate node's start-up (thousands of files under node_modules).
P9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$P9,ro,cache=loose" modules /lib/modules || fail "cannot mount the modules export"
modprobe -a overlay configfs || fail "cannot load overlay and configfs"

mount -t 9p -o "$P9,ro,cache=loose" hostroot /ro || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  fail "cannot mount the overlay"

N=/newroot
mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
mount -t configfs configfs $N/sys/kernel/config
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts && mount -t devpts devpts $N/dev/pts
mount -t tmpfs -o mode=0755 tmpfs $N/run
mkdir -p $N/lib/modules && mount --bind /lib/modules $N/lib/modules
mkdir -p "$N$RUN_DIR" && mount -t 9p -o "$P9" results "$N$RUN_DIR" || fail "cannot mount the run folder"
# The guest gets its own /tmp, but a checkout under the host's /tmp (as CI's clone may be) must
# stay visible: carry it over the new tmpfs with a bind mount.
CWD=$(sed -n "s/^export PORTALIS_CWD='\(.*\)'$/\1/p" "$N$RUN_DIR/run.env")
case "$CWD" in
  /tmp/*)
    mkdir -p /keep && mount --bind "$N$CWD" /keep || fail "cannot keep $CWD"
    mount -t tmpfs -o mode=1777 tmpfs $N/tmp
    mkdir -p "$N$CWD" && mount -o move /keep "$N$CWD" || fail "cannot bring back $CWD" ;;
  *) mount -t tmpfs -o mode=1777 tmpfs $N/tmp ;;
esac

STAGE2=$(sed -n "s/^export PORTALIS_STAGE2='\(.*\)'$/\1/p" "$N$RUN_DIR/run.env")
[ -n "$STAGE2" ] || fail "no PORTALIS_STAGE2 in $RUN_DIR/run.env"
chroot $N /bin/sh "$STAGE2" "$RUN_DIR"
sync
poweroff -f
