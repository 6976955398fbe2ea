//! Which instructions the CPU offers, checked once per process.

/// Whether the CPU has AVX2 and FMA (x86-64 from 2013 on).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    })
}

/// Whether the CPU has AVX-512 with its 8-bit dot products (VNNI: Ice Lake, Zen 4 and later).
#[cfg(target_arch = "x86_64")]
pub fn has_avx512_vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")
    })
}
