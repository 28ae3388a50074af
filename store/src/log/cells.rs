//! The packed pixel state: `bits`-wide unsigned cells, most significant
//! bit first, exactly as Redis's BITFIELD stores them.

/// Unpacks a Redis BITFIELD of `bits`-wide unsigned cells (most significant
/// bit first, as Redis stores them) into one byte per cell.
pub fn unpack_cells(packed: &[u8], bits: u8, count: usize) -> Vec<u8> {
    let bits = usize::from(bits);
    (0..count)
        .map(|i| {
            let mut v = 0u8;
            for b in 0..bits {
                let at = i * bits + b;
                let byte = packed.get(at / 8).copied().unwrap_or(0);
                let bit = (byte >> (7 - at % 8)) & 1;
                v = (v << 1) | bit;
            }
            v
        })
        .collect()
}

/// Sets cell `index` to `value` in a packed MSB-first BITFIELD of
/// `bits`-wide cells (the inverse of [`unpack_cells`]), growing it as needed.
pub fn pack_cell(packed: &mut Vec<u8>, bits: u8, index: usize, value: u8) {
    let bits = usize::from(bits);
    let end_bit = (index + 1) * bits;
    let need = end_bit.div_ceil(8);
    if packed.len() < need {
        packed.resize(need, 0);
    }
    for b in 0..bits {
        let at = index * bits + b;
        let bit = (value >> (bits - 1 - b)) & 1;
        let mask = 1u8 << (7 - at % 8);
        if bit == 1 {
            packed[at / 8] |= mask;
        } else {
            packed[at / 8] &= !mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_msb_first_cells_like_redis_bitfield() {
        // Cells 0..3 as u5: 31, 1, 0 -> 11111 00001 00000 (+ padding)
        let packed = [0b1111_1000, 0b0100_0000];
        assert_eq!(unpack_cells(&packed, 5, 3), vec![31, 1, 0]);
        assert_eq!(unpack_cells(&[7, 255], 8, 3), vec![7, 255, 0]);
        assert_eq!(unpack_cells(&[], 5, 2), vec![0, 0]);
    }

    #[test]
    fn packing_is_the_inverse_of_unpacking() {
        for bits in [5u8, 8] {
            let mut packed = Vec::new();
            let values: Vec<u8> = (0..37).map(|i| (i * 7 % 32) as u8).collect();
            for (i, v) in values.iter().enumerate() {
                pack_cell(&mut packed, bits, i, *v);
            }
            // Overwrites clear bits too.
            pack_cell(&mut packed, bits, 3, 0);
            let mut expected = values.clone();
            expected[3] = 0;
            assert_eq!(unpack_cells(&packed, bits, values.len()), expected);
        }
    }
}
