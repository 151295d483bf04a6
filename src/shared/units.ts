/** Binary units, as LightOS, Cinder (`size` in GiB) and the kernel (`size` in 512-byte sectors) count. */
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
