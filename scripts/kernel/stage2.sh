#!/bin/sh
# Stage 2 of a Portalis kernel-test boot: runs in the guest, chrooted into the tmpfs overlay of the
# host's root (so every host program is here, and writes stay in the guest), as the initramfs's
# child. Reads the run folder's run.env (written by test/kernel/harness/boot.ts), brings up the
# loopback and optionally the user-mode network, loads the scenario's modules, runs the
# scenario's command and leaves in the run folder:
#   output.log  the command's stdout and stderr (also copied to the console)
#   exit-code   its exit status (absent if the guest died before it finished)
#   timing      guest uptime when stage 2 began, and the command's duration
#   dmesg.log   the kernel log at the end
RUN_DIR=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
. "$RUN_DIR/run.env"
echo "stage2_uptime_s=$(cut -d' ' -f1 /proc/uptime)" > "$RUN_DIR/timing"

# busybox's ip: iproute2 is not among the harness's packages.
busybox ip link set lo up
[ -z "$PORTALIS_MODULES" ] || modprobe -a $PORTALIS_MODULES || echo "stage2: modprobe -a $PORTALIS_MODULES failed" >&2
if [ "$PORTALIS_NETWORK" = 1 ]; then
  # QEMU user networking: the host is 10.0.2.2; no DHCP client needed.
  modprobe virtio_net &&
    busybox ip addr add 10.0.2.15/24 dev eth0 &&
    busybox ip link set eth0 up &&
    busybox ip route add default via 10.0.2.2 ||
    echo "stage2: network setup failed" >&2
fi

cd "$PORTALIS_CWD" || exit 1
t0=$(date +%s%N)
{
  sh -c "$PORTALIS_COMMAND" < /dev/null
  echo $? > "$RUN_DIR/exit-code"
} 2>&1 | tee "$RUN_DIR/output.log"
echo "scenario_ms=$((($(date +%s%N) - t0) / 1000000))" >> "$RUN_DIR/timing"
dmesg > "$RUN_DIR/dmesg.log"
