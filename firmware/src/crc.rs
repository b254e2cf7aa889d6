//! CRC-32 (IEEE 802.3, the zlib/PNG polynomial) over the model blob, so that a blob damaged in
//! flash or in transit is refused before any of its weights are used.
//!
//! Table-driven with a 16-entry table: 64 bytes of flash instead of 1 KiB, and the blob is
//! checked once at start-up, so speed does not matter.

const POLY: u32 = 0xEDB8_8320;

const fn nibble_table() -> [u32; 16] {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 16] = nibble_table();

/// A running CRC-32; feed it bytes in any number of pieces.
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    pub const fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c ^= b as u32;
            c = (c >> 4) ^ TABLE[(c & 0xF) as usize];
            c = (c >> 4) ^ TABLE[(c & 0xF) as usize];
        }
        self.0 = c;
    }

    pub const fn finish(self) -> u32 {
        !self.0
    }
}

/// CRC-32 of one byte slice.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitwise definition of CRC-32, independent of the table.
    fn reference(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn table_matches_bitwise_definition_and_chunking() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        assert_eq!(crc32(&data), reference(&data));
        let mut c = Crc32::new();
        for chunk in data.chunks(7) {
            c.update(chunk);
        }
        assert_eq!(c.finish(), reference(&data));
    }

    #[test]
    fn detects_single_bit_flips() {
        let mut data = [0x5Au8; 64];
        let good = crc32(&data);
        for i in 0..data.len() * 8 {
            data[i / 8] ^= 1 << (i % 8);
            assert_ne!(crc32(&data), good, "bit {i}");
            data[i / 8] ^= 1 << (i % 8);
        }
    }
}
