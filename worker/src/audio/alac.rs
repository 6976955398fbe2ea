//! **decode**, ALAC: Apple Lossless as Apple's reference decoder defines it (`ag_dec.c`,
//! `dp_dec.c` and `matrix_dec.c` of Apple's ALAC, Apache-2.0), written for speed.
//!
//! Decoded samples equal symphonia's ALAC decoder's, which this replaces
//! (`tests/tests/it/lossless.rs` checks every predictor order against the source). Where the time
//! goes, and why this is faster:
//! - the **adaptive predictor** is a chain from sample to sample (each sample's coefficients are
//!   updated from the previous one), so one channel leaves most of the core idle. The two
//!   channels of a pair are independent, and are run in one loop, each step without
//!   data-dependent branches (the coefficient update's early exit is a mask), so that the core
//!   works on both chains at once;
//! - the **residuals** (adaptive Golomb codes) are read from a 64-bit window refilled 8 bytes at
//!   a time, each code with one look at the window.
//!
//! Bad input never panics and allocates nothing sized by the stream: the buffers are sized by the
//! magic cookie's frame length, which is bounded, and a packet that reads past its end is an
//! error.

use symphonia::core::audio::{Channels, layouts};
use symphonia_common::apple::audio::alac::MagicCookie;

/// Largest frame length accepted (16 × the standard 4096), as symphonia does.
const MAX_FRAME_LENGTH: u32 = 4096 * 16;

/// A channel's predictor parameters, from its element header.
struct ChannelHeader {
    mode: u32,
    shift: u32,
    pb_factor: u32,
    order: usize,
    coefs: [i32; 32],
}

/// The ALAC decoder: one packet in, planar 32-bit samples out.
pub struct Alac {
    cookie: MagicCookie,
    map: [u8; 8],
    planes: Vec<Vec<i32>>,
    tail: Vec<u16>,
    frames: usize,
}

impl Alac {
    /// Opens a decoder from the track's magic cookie.
    pub fn new(extra_data: Option<&[u8]>) -> Result<Alac, String> {
        let extra = extra_data.ok_or("alac: the track has no magic cookie")?;
        let cookie = MagicCookie::read(extra).map_err(|e| format!("alac: {e}"))?;
        if cookie.frame_length == 0 || cookie.frame_length > MAX_FRAME_LENGTH {
            return Err(format!(
                "alac: frame length {} is outside 1..={MAX_FRAME_LENGTH}",
                cookie.frame_length
            ));
        }
        if !(1..=32).contains(&cookie.bit_depth) {
            return Err(format!(
                "alac: bit depth {} is outside 1..=32",
                cookie.bit_depth
            ));
        }
        let map = channel_map(&cookie.channels).ok_or("alac: unsupported channel layout")?;
        let n = cookie.num_channels as usize;
        let len = cookie.frame_length as usize;
        Ok(Alac {
            map,
            planes: vec![vec![0; len]; n],
            tail: vec![0; 2 * len],
            frames: 0,
            cookie,
        })
    }

    /// Channels of the output.
    pub fn channels(&self) -> usize {
        self.planes.len()
    }

    /// Decodes one packet; its samples are then in [`Alac::mix_into`] and
    /// [`Alac::interleave_into`].
    pub fn decode(&mut self, packet: &[u8]) -> Result<(), String> {
        self.frames = 0;
        for plane in &mut self.planes {
            plane.fill(0);
        }
        let mut bits = Bits::new(packet);
        let num_channels = self.planes.len();
        let mut next = 0;
        let mut frames = 0;
        while next < num_channels {
            match bits.read(3) {
                // SCE and LFE: one channel.
                0 | 3 => {
                    let plane = self
                        .planes
                        .get_mut(usize::from(self.map[next]))
                        .ok_or("alac: invalid channel map")?;
                    frames = element(&self.cookie, &mut bits, &mut self.tail, plane, None)?;
                    next += 1;
                }
                // CPE: a channel pair.
                1 => {
                    if next + 2 > num_channels {
                        break;
                    }
                    let (a, b) = (usize::from(self.map[next]), usize::from(self.map[next + 1]));
                    let (x, y) = pair_mut(&mut self.planes, a, b)?;
                    frames = element(&self.cookie, &mut bits, &mut self.tail, x, Some(y))?;
                    next += 2;
                }
                // DSE: data to skip.
                4 => {
                    bits.read(4);
                    let aligned = bits.read(1) == 1;
                    let mut count = bits.read(8);
                    if count == 255 {
                        count += bits.read(8);
                    }
                    if aligned {
                        bits.align();
                    }
                    bits.skip(8 * count);
                }
                // FIL: fill to skip.
                6 => {
                    let mut count = bits.read(4);
                    if count == 15 {
                        count = count + bits.read(8) - 1;
                    }
                    bits.skip(8 * count);
                }
                7 => break,
                _ => return Err("alac: unsupported element (CCE or PCE)".into()),
            }
            if bits.overran() {
                return Err("alac: the packet ends inside an element".into());
            }
        }
        self.frames = frames;
        Ok(())
    }

    /// Appends the last packet's channels, averaged, to `out`.
    pub fn mix_into(&self, out: &mut Vec<f32>) {
        let (shift, scale) = self.to_f32();
        let start = out.len();
        out.resize(start + self.frames, 0.0);
        let mixed = &mut out[start..];
        for plane in &self.planes {
            for (m, &x) in mixed.iter_mut().zip(&plane[..self.frames]) {
                *m += x.wrapping_shl(shift) as f32 * scale;
            }
        }
        if self.planes.len() > 1 {
            let k = 1.0 / self.planes.len() as f32;
            mixed.iter_mut().for_each(|m| *m *= k);
        }
    }

    /// Appends the last packet's channels, interleaved, to `out`.
    pub fn interleave_into(&self, out: &mut Vec<f32>) {
        let (shift, scale) = self.to_f32();
        out.reserve(self.frames * self.planes.len());
        for i in 0..self.frames {
            out.extend(
                self.planes
                    .iter()
                    .map(|p| p[i].wrapping_shl(shift) as f32 * scale),
            );
        }
    }

    /// Samples are scaled as symphonia's are: shifted to 32 bits, then divided by 2³¹.
    fn to_f32(&self) -> (u32, f32) {
        (32 - u32::from(self.cookie.bit_depth), 1.0 / 2_147_483_648.0)
    }
}

fn pair_mut(
    planes: &mut [Vec<i32>],
    a: usize,
    b: usize,
) -> Result<(&mut [i32], &mut [i32]), String> {
    if a == b || a.max(b) >= planes.len() {
        return Err("alac: invalid channel map".into());
    }
    let (lo, hi) = planes.split_at_mut(a.max(b));
    let (x, y) = (&mut lo[a.min(b)], &mut hi[0]);
    Ok(if a < b { (x, y) } else { (y, x) })
}

/// ALAC's element order mapped to the output's channel order, per layout.
fn channel_map(channels: &Channels) -> Option<[u8; 8]> {
    Some(match *channels {
        layouts::CHANNEL_LAYOUT_MONO => [0, 0, 0, 0, 0, 0, 0, 0],
        layouts::CHANNEL_LAYOUT_STEREO => [0, 1, 0, 0, 0, 0, 0, 0],
        layouts::CHANNEL_LAYOUT_MPEG_3P0_B => [2, 0, 1, 0, 0, 0, 0, 0],
        layouts::CHANNEL_LAYOUT_MPEG_4P0_B => [2, 0, 1, 3, 0, 0, 0, 0],
        layouts::CHANNEL_LAYOUT_MPEG_5P0_D => [2, 0, 1, 3, 4, 0, 0, 0],
        layouts::CHANNEL_LAYOUT_MPEG_5P1_D => [2, 0, 1, 4, 5, 3, 0, 0],
        layouts::CHANNEL_LAYOUT_AAC_6P1 => [2, 0, 1, 5, 6, 4, 3, 0],
        layouts::CHANNEL_LAYOUT_MPEG_7P1_B => [2, 4, 5, 0, 1, 6, 7, 3],
        _ => return None,
    })
}

/// Decodes a single channel element, or a channel pair when `out1` is given. Returns its frames.
fn element(
    cookie: &MagicCookie,
    bits: &mut Bits<'_>,
    tail: &mut [u16],
    out0: &mut [i32],
    mut out1: Option<&mut [i32]>,
) -> Result<usize, String> {
    let pair = out1.is_some();
    bits.read(4); // element instance tag
    if bits.read(12) != 0 {
        return Err("alac: unused header bits are not 0".into());
    }
    let partial = bits.read(1) == 1;
    let shift = 8 * bits.read(2);
    let uncompressed = bits.read(1) == 1;
    if shift >= 24 || shift >= u32::from(cookie.bit_depth) {
        return Err("alac: invalid shift".into());
    }
    let n = if partial {
        bits.read(32) as usize
    } else {
        cookie.frame_length as usize
    };
    if n > cookie.frame_length as usize {
        return Err("alac: the frame is longer than the maximum frame length".into());
    }
    let depth = u32::from(cookie.bit_depth);
    if uncompressed {
        for i in 0..n {
            out0[i] = bits.read_signed(depth);
            if let Some(out1) = out1.as_mut() {
                out1[i] = bits.read_signed(depth);
            }
        }
        return Ok(n);
    }
    let bps = depth - shift + u32::from(pair);
    if bps > 32 {
        return Err("alac: more than 32 bits per coded sample".into());
    }
    let mix_shift = bits.read(8);
    let mix_weight = bits.read_signed(8);
    if !pair && (mix_shift != 0 || mix_weight != 0) {
        return Err("alac: mixing information on a single channel".into());
    }
    let h0 = header(bits, cookie)?;
    let h1 = if pair {
        Some(header(bits, cookie)?)
    } else {
        None
    };
    let tails = if pair { 2 * n } else { n };
    if shift > 0 {
        for t in &mut tail[..tails] {
            *t = bits.read(shift) as u16;
        }
    }
    residuals(bits, &mut out0[..n], cookie, h0.pb_factor, bps);
    match (out1.as_mut(), &h1) {
        (Some(out1), Some(h1)) => {
            residuals(bits, &mut out1[..n], cookie, h1.pb_factor, bps);
            if bits.overran() {
                return Err("alac: the packet ends inside the residuals".into());
            }
            predict_pair(&h0, &mut out0[..n], h1, &mut out1[..n], bps)?;
            if mix_weight != 0 {
                if mix_shift > 31 {
                    return Err("alac: mixing shift above 31".into());
                }
                unmix(&mut out0[..n], &mut out1[..n], mix_weight, mix_shift);
            }
        }
        _ => {
            if bits.overran() {
                return Err("alac: the packet ends inside the residuals".into());
            }
            predict(&h0, &mut out0[..n], bps)?;
        }
    }
    if shift > 0 {
        match out1.as_mut() {
            Some(out1) => {
                for (i, t) in tail[..tails].chunks_exact(2).enumerate() {
                    out0[i] = (out0[i] << shift) | i32::from(t[0]);
                    out1[i] = (out1[i] << shift) | i32::from(t[1]);
                }
            }
            None => {
                for (s, &t) in out0[..n].iter_mut().zip(&tail[..n]) {
                    *s = (*s << shift) | i32::from(t);
                }
            }
        }
    }
    Ok(n)
}

fn header(bits: &mut Bits<'_>, cookie: &MagicCookie) -> Result<ChannelHeader, String> {
    let mode = bits.read(4);
    let shift = bits.read(4);
    let pb_factor = (bits.read(3) * u32::from(cookie.pb)) >> 2;
    let order = bits.read(5) as usize;
    let mut coefs = [0; 32];
    for c in &mut coefs[..order] {
        *c = bits.read_signed(16);
    }
    if mode > 0 && mode < 15 {
        return Err("alac: invalid prediction mode".into());
    }
    Ok(ChannelHeader {
        mode,
        shift,
        pb_factor,
        order,
        coefs,
    })
}

/// Reads a channel's adaptive Golomb-coded residuals.
fn residuals(reader: &mut Bits<'_>, out: &mut [i32], cookie: &MagicCookie, pb: u32, bps: u32) {
    // A copy in registers, not a reader behind a pointer that every read would store to.
    let mut local = *reader;
    let bits = &mut local;
    let kb = u32::from(cookie.kb);
    let mut mb = u32::from(cookie.mb);
    let mut toggle = 0u32;
    let n = out.len();
    let mut i = 0;
    while i < n {
        bits.refill();
        let v = rice(bits, lg3a(mb).min(kb), bps).wrapping_add(toggle);
        out[i] = ((v >> 1) as i32) ^ -((v & 1) as i32);
        mb = if v > 0xffff {
            0xffff
        } else {
            mb.wrapping_add(pb * v)
                .wrapping_sub(pb.wrapping_mul(mb) >> 9)
        };
        toggle = 0;
        i += 1;
        if mb < 128 && i < n {
            // A run of zeros follows.
            let k = mb.leading_zeros() - 24 + ((mb + 16) >> 6);
            bits.refill();
            let zeros = rice(bits, k.min(kb), 16);
            if zeros < 0xffff {
                toggle = 1;
            }
            mb = 0;
            let end = i.saturating_add(zeros as usize).min(n);
            out[i..end].fill(0);
            i = end;
        }
    }
    *reader = local;
}

#[inline(always)]
fn lg3a(x: u32) -> u32 {
    31 - ((x >> 9) + 3).leading_zeros()
}

/// One adaptive Golomb code; the window holds at least 57 bits (41 are the most read).
#[inline(always)]
fn rice(bits: &mut Bits<'_>, k: u32, bps: u32) -> u32 {
    let ones = (!bits.cache).leading_zeros();
    if ones >= 9 {
        bits.consume(9);
        let v = bits.peek(bps);
        bits.consume(bps);
        return v;
    }
    bits.consume(ones + 1);
    match k {
        0 => 0,
        1 => ones,
        _ => {
            let m = (ones << k) - ones;
            let v = bits.peek(k);
            if v >= 2 {
                bits.consume(k);
                m + v - 1
            } else {
                bits.consume(k - 1);
                m
            }
        }
    }
}

#[inline(always)]
fn clip(x: i32, bits: u32) -> i32 {
    let n = 32 - bits;
    x.wrapping_shl(n).wrapping_shr(n)
}

/// The first-order pre-pass (order 31 or mode 15) and the warm-up samples of a channel; returns
/// where the adaptive filter starts.
fn warm_up(h: &ChannelHeader, out: &mut [i32], bps: u32) -> usize {
    if h.order == 31 || h.mode == 15 {
        for i in 1..out.len() {
            out[i] = clip(out[i].wrapping_add(out[i - 1]), bps);
        }
    }
    for i in 1..out.len().min(1 + h.order) {
        out[i] = clip(out[i].wrapping_add(out[i - 1]), bps);
    }
    1 + h.order
}

fn predict(h: &ChannelHeader, out: &mut [i32], bps: u32) -> Result<(), String> {
    if h.order == 0 || out.is_empty() {
        return Ok(());
    }
    let start = warm_up(h, out, bps);
    let mut c = h.coefs;
    macro_rules! by_order {
        ($($o:literal)*) => {
            match h.order {
                $($o => run::<$o>(&mut c, out, start, h.shift, bps),)*
                o => {
                    for i in start..out.len() {
                        step_dyn(&mut c[..o], out, i, h.shift, bps);
                    }
                }
            }
        };
    }
    by_order!(1 2 3 4 5 6 7 8);
    Ok(())
}

/// A channel pair's predictors, run together (orders 1 to 8, what encoders use: Apple's 4 or 8,
/// ffmpeg's 4 to 6 by default); other orders one channel after the other.
fn predict_pair(
    h0: &ChannelHeader,
    out0: &mut [i32],
    h1: &ChannelHeader,
    out1: &mut [i32],
    bps: u32,
) -> Result<(), String> {
    if !(1..=8).contains(&h0.order) || !(1..=8).contains(&h1.order) || out0.is_empty() {
        predict(h0, out0, bps)?;
        return predict(h1, out1, bps);
    }
    let p0 = Chan {
        c: h0.coefs,
        start: warm_up(h0, out0, bps),
        shift: h0.shift,
    };
    let p1 = Chan {
        c: h1.coefs,
        start: warm_up(h1, out1, bps),
        shift: h1.shift,
    };
    macro_rules! second {
        ($a:literal; $($b:literal)*) => {
            match h1.order {
                $($b => run_pair::<$a, $b>(p0, out0, p1, out1, bps),)*
                _ => unreachable!("orders are 1..=8 here"),
            }
        };
    }
    match h0.order {
        1 => second!(1; 1 2 3 4 5 6 7 8),
        2 => second!(2; 1 2 3 4 5 6 7 8),
        3 => second!(3; 1 2 3 4 5 6 7 8),
        4 => second!(4; 1 2 3 4 5 6 7 8),
        5 => second!(5; 1 2 3 4 5 6 7 8),
        6 => second!(6; 1 2 3 4 5 6 7 8),
        7 => second!(7; 1 2 3 4 5 6 7 8),
        8 => second!(8; 1 2 3 4 5 6 7 8),
        _ => unreachable!("orders are 1..=8 here"),
    }
    Ok(())
}

/// A channel's predictor state while a pair runs.
#[derive(Clone, Copy)]
struct Chan {
    c: [i32; 32],
    start: usize,
    shift: u32,
}

fn run<const O: usize>(c: &mut [i32; 32], out: &mut [i32], start: usize, shift: u32, bps: u32) {
    let c: &mut [i32; O] = (&mut c[..O]).try_into().expect("O <= 32");
    for i in start..out.len() {
        step::<O>(c, out, i, shift, bps);
    }
}

fn run_pair<const A: usize, const B: usize>(
    mut p0: Chan,
    out0: &mut [i32],
    mut p1: Chan,
    out1: &mut [i32],
    bps: u32,
) {
    let n = out0.len().min(out1.len());
    let both = p0.start.max(p1.start).min(n);
    let c0: &mut [i32; A] = (&mut p0.c[..A]).try_into().expect("A <= 32");
    let c1: &mut [i32; B] = (&mut p1.c[..B]).try_into().expect("B <= 32");
    for i in p0.start..both {
        step::<A>(c0, out0, i, p0.shift, bps);
    }
    for i in p1.start..both {
        step::<B>(c1, out1, i, p1.shift, bps);
    }
    for i in both..n {
        step::<A>(c0, out0, i, p0.shift, bps);
        step::<B>(c1, out1, i, p1.shift, bps);
    }
}

/// One sample of the adaptive filter, order known at compile time. `c[O-1-j]` weighs the `j`-th
/// oldest of the `O` past samples, each taken relative to the sample before them.
#[inline(always)]
fn step<const O: usize>(c: &mut [i32; O], out: &mut [i32], i: usize, shift: u32, bps: u32) {
    let past0 = out[i - O - 1];
    let win: [i32; O] = out[i - O..i].try_into().expect("a window of O samples");
    let mut sum = 0i32;
    for j in 0..O {
        sum = sum.wrapping_add(c[O - 1 - j].wrapping_mul(win[j].wrapping_sub(past0)));
    }
    let res = out[i];
    let predicted = sum.wrapping_add((1 << shift) >> 1) >> shift;
    out[i] = clip(res.wrapping_add(past0).wrapping_add(predicted), bps);
    // Sign-sign coefficient update, oldest sample first, stopping once the residual's sign has
    // been used up. Written without data-dependent branches (the stop is a mask) and with no
    // multiplication but by constants: the multiplier port, not the arithmetic, bounded this
    // loop. A negative residual is followed by its magnitude: the reference's
    // `(-|d|) >> shift` is `-((|d| + 2^shift - 1) >> shift)`.
    let neg = res >> 31; // -1 when the residual is negative
    let bias = neg & ((1 << shift) - 1);
    let mut left = (res ^ neg).wrapping_sub(neg); // |res|
    let mut live = -i32::from(res != 0);
    for j in 0..O {
        let d = past0.wrapping_sub(win[j]);
        let sg = d.signum();
        c[O - 1 - j] = c[O - 1 - j].wrapping_sub(((sg ^ neg).wrapping_sub(neg)) & live);
        let t = d.wrapping_abs().wrapping_add(bias) >> shift;
        left = left.wrapping_sub((j as i32 + 1).wrapping_mul(t));
        live &= -i32::from(left > 0);
    }
}

/// [`step`] for any order.
fn step_dyn(c: &mut [i32], out: &mut [i32], i: usize, shift: u32, bps: u32) {
    let o = c.len();
    let past0 = out[i - o - 1];
    let win = &out[i - o..i];
    let sum = c.iter().rev().zip(win).fold(0i32, |sum, (&k, &x)| {
        sum.wrapping_add(k.wrapping_mul(x.wrapping_sub(past0)))
    });
    let res = out[i];
    let predicted = sum.wrapping_add((1 << shift) >> 1) >> shift;
    let s = res.signum();
    let mut r = res;
    for (j, (k, &x)) in c.iter_mut().rev().zip(win).enumerate() {
        if (r ^ s) < 0 || r == 0 {
            break;
        }
        let d = past0.wrapping_sub(x);
        let sg = d.signum();
        *k = k.wrapping_sub(s.wrapping_mul(sg));
        r = r
            .wrapping_sub((j as i32 + 1).wrapping_mul(s.wrapping_mul(sg.wrapping_mul(d)) >> shift));
    }
    out[i] = clip(res.wrapping_add(past0).wrapping_add(predicted), bps);
}

fn unmix(out0: &mut [i32], out1: &mut [i32], weight: i32, shift: u32) {
    for (a, b) in out0.iter_mut().zip(out1.iter_mut()) {
        let l = a
            .wrapping_add(*b)
            .wrapping_sub(b.wrapping_mul(weight) >> shift);
        *b = l.wrapping_sub(*b);
        *a = l;
    }
}

/// An MSB-first bit reader over one packet with a 64-bit window. Past the end it reads zeros
/// and remembers it ([`Bits::overran`]).
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    cache: u64,
    /// Valid bits at the top of `cache`.
    n: u32,
    /// Zero bits supplied past the end of the data.
    over: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        let mut b = Bits {
            data,
            pos: 0,
            cache: 0,
            n: 0,
            over: 0,
        };
        b.refill();
        b
    }

    /// Fills the window to at least 57 bits.
    #[inline(always)]
    fn refill(&mut self) {
        if self.n > 56 {
            return;
        }
        if let Some(word) = self.data.get(self.pos..self.pos + 8) {
            let w = u64::from_be_bytes(word.try_into().expect("8 bytes"));
            self.cache |= w >> self.n;
            let bytes = (64 - self.n) / 8;
            self.pos += bytes as usize;
            self.n += 8 * bytes;
        } else {
            while self.n <= 56 {
                let byte = match self.data.get(self.pos) {
                    Some(&b) => {
                        self.pos += 1;
                        b
                    }
                    None => {
                        self.over = self.over.saturating_add(8);
                        0
                    }
                };
                self.cache |= u64::from(byte) << (56 - self.n);
                self.n += 8;
            }
        }
    }

    /// The next `k` bits (1 ≤ `k` ≤ 32), not consumed.
    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        self.cache.checked_shr(64 - k).unwrap_or(0) as u32
    }

    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.cache = self.cache.checked_shl(k).unwrap_or(0);
        self.n -= k;
    }

    /// Reads `k` ≤ 32 bits.
    fn read(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.refill();
        let v = self.peek(k);
        self.consume(k);
        v
    }

    /// Reads `k` ≤ 32 bits as a two's-complement number.
    fn read_signed(&mut self, k: u32) -> i32 {
        if k == 0 {
            return 0;
        }
        let v = self.read(k) as i32;
        v.wrapping_shl(32 - k).wrapping_shr(32 - k)
    }

    fn skip(&mut self, mut k: u32) {
        while k > 0 {
            let step = k.min(32);
            self.read(step);
            k -= step;
        }
    }

    fn align(&mut self) {
        let consumed = self.pos as u64 * 8 + u64::from(self.over) - u64::from(self.n);
        let rem = (consumed % 8) as u32;
        if rem != 0 {
            self.read(8 - rem);
        }
    }

    /// Whether more bits were read than the packet holds.
    fn overran(&self) -> bool {
        self.n < self.over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_read_msb_first_and_know_when_they_ran_past_the_end() {
        let data = [
            0b1010_0000u8,
            0xFF,
            0x00,
            0x12,
            0x34,
            0x56,
            0x78,
            0x9A,
            0xBC,
        ];
        let mut b = Bits::new(&data);
        assert_eq!(b.read(3), 0b101);
        assert_eq!(b.read(5), 0);
        assert_eq!(b.read(12), 0xFF0);
        assert_eq!(b.read_signed(4), 0);
        assert_eq!(b.read(32), 0x1234_5678);
        assert_eq!(b.read(16), 0x9ABC);
        assert!(!b.overran());
        b.read(1);
        assert!(b.overran());
    }

    #[test]
    fn signed_reads_extend_the_sign() {
        let mut b = Bits::new(&[0xF0, 0x80, 0, 0]);
        assert_eq!(b.read_signed(4), -1);
        assert_eq!(b.read_signed(4), 0);
        assert_eq!(b.read_signed(8), -128);
    }

    #[test]
    fn a_packet_cut_short_is_an_error_not_a_panic() {
        // A cookie: frame length 4096, version 0, 16 bits, pb 40, mb 10, kb 14, 1 channel.
        let mut cookie = Vec::new();
        cookie.extend_from_slice(&4096u32.to_be_bytes());
        cookie.extend_from_slice(&[0, 16, 40, 10, 14, 1]);
        cookie.extend_from_slice(&255u16.to_be_bytes());
        cookie.extend_from_slice(&0u32.to_be_bytes());
        cookie.extend_from_slice(&0u32.to_be_bytes());
        cookie.extend_from_slice(&44_100u32.to_be_bytes());
        let mut dec = Alac::new(Some(&cookie)).expect("a valid cookie");
        // An SCE header with a compressed frame of 4096 samples, then nothing.
        assert!(dec.decode(&[0x00, 0x00, 0x00, 0x00]).is_err());
        for len in 0..16 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = dec.decode(&junk);
        }
    }
}
