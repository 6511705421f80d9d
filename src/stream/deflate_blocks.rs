//! Reads the block structure of a raw deflate stream (RFC 1951) without inflating it, to turn
//! the complete stream a one-shot compressor (libdeflate) makes of one block of input into one
//! that the next block's stream can follow: the last deflate block's BFINAL bit is cleared and
//! an empty stored block is appended, which is how zlib's sync flush ends its output.
//!
//! The walk decodes every Huffman symbol to find where each deflate block ends, but copies
//! nothing: it only skips the extra bits of lengths and distances.

/// Turns a complete raw deflate stream into one that another can follow, as described above.
/// Fails, leaving `stream` unchanged, when it is not a well-formed deflate stream.
pub(crate) fn end_with_sync_flush(stream: &mut Vec<u8>) -> Result<(), &'static str> {
    let last = final_block(stream)?;
    stream.truncate(last.end_bit.div_ceil(8) as usize);
    stream[(last.header_bit / 8) as usize] &= !(1 << (last.header_bit % 8));
    // The empty stored block: 3 header bits of 0 and padding to a byte (zero bits, which is what
    // follows the last block's end in its final byte), then LEN 0 and NLEN 0xffff.
    let used_in_last_byte = last.end_bit % 8;
    if used_in_last_byte == 0 || used_in_last_byte > 5 {
        stream.push(0);
    } else if let Some(byte) = stream.last_mut() {
        *byte &= (1u8 << used_in_last_byte) - 1;
    }
    stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
    Ok(())
}

/// Where the final block of a deflate stream starts and ends, in bits from the stream's start.
#[derive(Debug, PartialEq)]
struct FinalBlock {
    header_bit: u64,
    end_bit: u64,
}

fn final_block(stream: &[u8]) -> Result<FinalBlock, &'static str> {
    let mut bits = BitReader::new(stream);
    let (fixed_litlen, fixed_distance) = fixed_codes();
    loop {
        bits.refill()?;
        let header_bit = bits.position();
        let is_final = bits.take(1) == 1;
        match bits.take(2) {
            0 => bits.skip_stored_block()?,
            1 => skip_symbols(&mut bits, &fixed_litlen, &fixed_distance)?,
            2 => {
                let (litlen, distance) = read_dynamic_codes(&mut bits)?;
                skip_symbols(&mut bits, &litlen, &distance)?;
            }
            _ => return Err("a deflate block has the reserved type 3"),
        }
        let end_bit = bits.position();
        if end_bit > stream.len() as u64 * 8 {
            return Err("the deflate stream ends inside a block");
        }
        if is_final {
            return Ok(FinalBlock { header_bit, end_bit });
        }
    }
}

/// Length symbols 257..=285: how many extra bits follow each.
const LENGTH_EXTRA_BITS: [u8; 29] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
/// Distance symbols 0..=29: how many extra bits follow each.
const DISTANCE_EXTRA_BITS: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/// The order in which a dynamic block lists the code lengths of the code-length alphabet.
const CODE_LENGTH_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const MAX_CODE_BITS: usize = 15;
/// Codes up to this long are decoded with one table lookup; longer (rare) ones bit by bit.
const TABLE_BITS: u32 = 11;
const TABLE_MASK: u64 = (1 << TABLE_BITS) - 1;
/// A table entry's low bits: how many bits the code and its extra bits take.
const ENTRY_BITS: u32 = 0xff;
/// A length symbol: a distance follows.
const ENTRY_LENGTH: u32 = 1 << 8;
/// End of block, an invalid symbol, or a code longer than the table: decoded the slow way.
const ENTRY_SPECIAL: u32 = 1 << 9;

/// What a decoded symbol means for the walk.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A literal, a distance, or a code-length symbol: nothing more to decode.
    Plain,
    /// A length: a distance follows.
    Length,
    EndOfBlock,
    Invalid,
}

/// The three alphabets of RFC 1951.
#[derive(Clone, Copy)]
enum Alphabet {
    LiteralLength,
    Distance,
    CodeLength,
}

impl Alphabet {
    /// The kind of `symbol`, and the extra bits that follow its code.
    fn classify(self, symbol: u16) -> (Kind, u8) {
        match self {
            Alphabet::LiteralLength => match symbol {
                0..=255 => (Kind::Plain, 0),
                256 => (Kind::EndOfBlock, 0),
                257..=285 => (Kind::Length, LENGTH_EXTRA_BITS[usize::from(symbol) - 257]),
                _ => (Kind::Invalid, 0),
            },
            Alphabet::Distance => match DISTANCE_EXTRA_BITS.get(usize::from(symbol)) {
                Some(&extra) => (Kind::Plain, extra),
                None => (Kind::Invalid, 0),
            },
            Alphabet::CodeLength => (Kind::Plain, 0),
        }
    }
}

/// A decoded symbol: what it is, and how many bits its code and extra bits take together.
#[derive(Clone, Copy)]
struct Decoded {
    symbol: u16,
    kind: Kind,
    bits: u8,
}

/// Skips the symbols of one Huffman-coded block, up to and including its end-of-block code.
///
/// The common cases, a literal or a length and distance whose codes are in the tables, stay in
/// this loop; the next table entry is looked up as soon as the bits before it are dropped. The
/// reader is a local copy, passed by value to the rare paths, so that its buffer stays in a
/// register instead of going through memory on every symbol.
fn skip_symbols(bits: &mut BitReader<'_>, litlen: &Code, distance: &Code) -> Result<(), &'static str> {
    // A length with its extra bits and a distance with its own take at most 48 bits.
    const MOST_BITS_PER_SYMBOL: u32 = 48;
    let mut reader = *bits;
    reader.refill()?;
    let mut symbol = litlen.table[(reader.buffer & TABLE_MASK) as usize];
    loop {
        if symbol & (ENTRY_LENGTH | ENTRY_SPECIAL) == 0 {
            reader.skip(symbol & ENTRY_BITS);
        } else if symbol & ENTRY_SPECIAL == 0 {
            reader.skip(symbol & ENTRY_BITS);
            let distance_entry = distance.table[(reader.buffer & TABLE_MASK) as usize];
            if distance_entry & ENTRY_SPECIAL != 0 {
                reader = skip_distance(reader, distance)?;
            } else {
                reader.skip(distance_entry & ENTRY_BITS);
            }
        } else {
            let kind;
            (reader, kind) = skip_symbol(reader, litlen, distance)?;
            if kind == Kind::EndOfBlock {
                *bits = reader;
                return Ok(());
            }
        }
        if reader.buffered < MOST_BITS_PER_SYMBOL {
            reader.refill()?;
        }
        symbol = litlen.table[(reader.buffer & TABLE_MASK) as usize];
    }
}

/// Skips one literal/length symbol (and its distance) however it is coded; says what it was.
#[cold]
fn skip_symbol<'a>(
    mut bits: BitReader<'a>,
    litlen: &Code,
    distance: &Code,
) -> Result<(BitReader<'a>, Kind), &'static str> {
    let symbol = litlen.decode(bits.buffer)?;
    bits.skip(u32::from(symbol.bits));
    match symbol.kind {
        Kind::Plain | Kind::EndOfBlock => {}
        Kind::Length => bits = skip_distance(bits, distance)?,
        Kind::Invalid => return Err("a length symbol is out of range"),
    }
    Ok((bits, symbol.kind))
}

#[cold]
fn skip_distance<'a>(mut bits: BitReader<'a>, distance: &Code) -> Result<BitReader<'a>, &'static str> {
    let decoded = distance.decode(bits.buffer)?;
    if decoded.kind == Kind::Invalid {
        return Err("a distance symbol is out of range");
    }
    bits.skip(u32::from(decoded.bits));
    Ok(bits)
}

fn read_dynamic_codes(bits: &mut BitReader<'_>) -> Result<(Code, Code), &'static str> {
    let litlen_count = bits.take(5) as usize + 257;
    let distance_count = bits.take(5) as usize + 1;
    let code_length_count = bits.take(4) as usize + 4;
    let mut code_length_lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..code_length_count] {
        bits.refill()?;
        code_length_lengths[symbol] = bits.take(3) as u8;
    }
    let code_lengths = Code::new(&code_length_lengths, Alphabet::CodeLength)?;
    let mut lengths = vec![0u8; litlen_count + distance_count];
    let mut filled = 0;
    while filled < lengths.len() {
        bits.refill()?;
        let decoded = code_lengths.decode(bits.buffer)?;
        bits.skip(u32::from(decoded.bits));
        let (value, repeat) = match decoded.symbol {
            0..=15 => (decoded.symbol as u8, 1),
            16 => {
                let previous = *lengths[..filled].last().ok_or("a code length repeats before the first")?;
                (previous, 3 + bits.take(2) as usize)
            }
            17 => (0, 3 + bits.take(3) as usize),
            _ => (0, 11 + bits.take(7) as usize),
        };
        let run = lengths.get_mut(filled..filled + repeat).ok_or("code lengths run past their count")?;
        run.fill(value);
        filled += repeat;
    }
    if lengths[256] == 0 {
        return Err("a dynamic block has no end-of-block code");
    }
    Ok((
        Code::new(&lengths[..litlen_count], Alphabet::LiteralLength)?,
        Code::new(&lengths[litlen_count..], Alphabet::Distance)?,
    ))
}

fn fixed_codes() -> (Code, Code) {
    let mut litlen = [8u8; 288];
    litlen[144..256].fill(9);
    litlen[256..280].fill(7);
    let fixed = Code::new(&litlen, Alphabet::LiteralLength).expect("the fixed literal/length code is valid");
    let distance = Code::new(&[5u8; 32], Alphabet::Distance).expect("the fixed distance code is valid");
    (fixed, distance)
}

/// A canonical Huffman code: a table for codes of up to `TABLE_BITS` bits, and the counts and
/// symbols by length for decoding longer ones bit by bit.
struct Code {
    alphabet: Alphabet,
    /// Indexed by the next `TABLE_BITS` input bits: the symbol's `ENTRY_*` bits, and the
    /// symbol from bit 16; just `ENTRY_SPECIAL` where the code is longer.
    table: Box<[u32; 1 << TABLE_BITS]>,
    count_by_length: [u16; MAX_CODE_BITS + 1],
    /// The first code of each length, and the index in `symbols_by_code` of its symbol.
    first_code: [u32; MAX_CODE_BITS + 1],
    first_symbol: [usize; MAX_CODE_BITS + 1],
    symbols_by_code: Vec<u16>,
}

impl Code {
    fn new(lengths: &[u8], alphabet: Alphabet) -> Result<Code, &'static str> {
        let mut count_by_length = [0u16; MAX_CODE_BITS + 1];
        for &length in lengths {
            count_by_length[usize::from(length)] += 1;
        }
        count_by_length[0] = 0;
        let mut left: i32 = 1;
        for &count in &count_by_length[1..] {
            left = 2 * left - i32::from(count);
            if left < 0 {
                return Err("a Huffman code has more codes than its lengths allow");
            }
        }
        let mut first_code = [0u32; MAX_CODE_BITS + 1];
        let mut first_symbol = [0usize; MAX_CODE_BITS + 1];
        for length in 2..=MAX_CODE_BITS {
            let previous = u32::from(count_by_length[length - 1]);
            first_code[length] = (first_code[length - 1] + previous) << 1;
            first_symbol[length] = first_symbol[length - 1] + previous as usize;
        }
        let (mut next_code, mut offsets) = (first_code, first_symbol);
        let mut symbols_by_code = vec![0u16; lengths.iter().filter(|&&length| length > 0).count()];
        let mut table = Box::new([ENTRY_SPECIAL; 1 << TABLE_BITS]);
        for (symbol, &length) in lengths.iter().enumerate() {
            let length = usize::from(length);
            if length == 0 {
                continue;
            }
            let symbol = symbol as u16;
            symbols_by_code[offsets[length]] = symbol;
            offsets[length] += 1;
            let code = next_code[length];
            next_code[length] += 1;
            if length as u32 <= TABLE_BITS {
                // The stream holds codes most significant bit first, so the table is indexed
                // by the reversed code, repeated for every value of the bits after it.
                let reversed = code.reverse_bits() >> (32 - length);
                let (kind, extra) = alphabet.classify(symbol);
                let flags = match kind {
                    Kind::Plain => 0,
                    Kind::Length => ENTRY_LENGTH,
                    Kind::EndOfBlock | Kind::Invalid => ENTRY_SPECIAL,
                };
                let entry = u32::from(symbol) << 16 | flags | (length as u32 + u32::from(extra));
                for slot in table.iter_mut().skip(reversed as usize).step_by(1 << length) {
                    *slot = entry;
                }
            }
        }
        Ok(Code { alphabet, table, count_by_length, first_code, first_symbol, symbols_by_code })
    }

    /// Decodes the symbol at the start of `buffer`: at least 15 bits, or zeros past the end.
    fn decode(&self, buffer: u64) -> Result<Decoded, &'static str> {
        let entry = self.table[(buffer & TABLE_MASK) as usize];
        if entry == ENTRY_SPECIAL {
            return self.decode_long(buffer);
        }
        let symbol = (entry >> 16) as u16;
        Ok(Decoded { symbol, kind: self.alphabet.classify(symbol).0, bits: (entry & ENTRY_BITS) as u8 })
    }

    /// Codes longer than the table: canonical decoding, continuing one bit at a time from the
    /// table's width (no shorter code matched, which the table has told).
    fn decode_long(&self, buffer: u64) -> Result<Decoded, &'static str> {
        let mut code = ((buffer & TABLE_MASK) as u32).reverse_bits() >> (32 - TABLE_BITS);
        for length in TABLE_BITS as usize + 1..=MAX_CODE_BITS {
            code = code << 1 | ((buffer >> (length - 1)) & 1) as u32;
            let Some(rank) = code.checked_sub(self.first_code[length]) else { break };
            if rank < u32::from(self.count_by_length[length]) {
                let symbol = self.symbols_by_code[self.first_symbol[length] + rank as usize];
                let (kind, extra) = self.alphabet.classify(symbol);
                return Ok(Decoded { symbol, kind, bits: length as u8 + extra });
            }
        }
        Err("a Huffman code in the stream is not in its table")
    }
}

/// Bits of a byte slice, least significant first, as deflate packs them. Past the end of the
/// slice they read as zeros, a few bytes' worth, so that a symbol can be decoded before its
/// length is known; the walk checks its position against the slice at each block's end.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte not yet in `buffer`, counting the zeros read past the end.
    next_byte: usize,
    buffer: u64,
    buffered: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, next_byte: 0, buffer: 0, buffered: 0 }
    }

    fn position(&self) -> u64 {
        self.next_byte as u64 * 8 - u64::from(self.buffered)
    }

    /// Fills the buffer to at least 56 bits. Fails when more than 8 bytes of zeros past the end
    /// would be needed: the stream ended inside a block.
    #[inline(always)]
    fn refill(&mut self) -> Result<(), &'static str> {
        if let Some(word) = self.data.get(self.next_byte..self.next_byte + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            // Whole bytes only: the bits above `buffered` are those of the bytes that follow,
            // so or-ing them in again later changes nothing.
            self.buffer |= word << self.buffered;
            let bytes = (63 - self.buffered) / 8;
            self.next_byte += bytes as usize;
            self.buffered += bytes * 8;
            return Ok(());
        }
        while self.buffered < 56 {
            if self.next_byte >= self.data.len() + 8 {
                return Err("the deflate stream ends inside a block");
            }
            let byte = self.data.get(self.next_byte).copied().unwrap_or(0);
            self.buffer |= u64::from(byte) << self.buffered;
            self.next_byte += 1;
            self.buffered += 8;
        }
        Ok(())
    }

    /// Takes the next `count` (≤ 32) bits; the caller has refilled for them.
    fn take(&mut self, count: u32) -> u32 {
        let value = (self.buffer & ((1u64 << count) - 1)) as u32;
        self.skip(count);
        value
    }

    /// Drops the next `count` bits; the caller has refilled for them.
    fn skip(&mut self, count: u32) {
        debug_assert!(count <= self.buffered);
        self.buffer >>= count;
        self.buffered -= count;
    }

    fn skip_stored_block(&mut self) -> Result<(), &'static str> {
        self.take(self.buffered % 8);
        self.refill()?;
        let length = self.take(16);
        if self.take(16) != !length & 0xffff {
            return Err("a stored block's length check does not match");
        }
        let end = self.position() as usize / 8 + length as usize;
        if end > self.data.len() {
            return Err("the deflate stream ends inside a stored block");
        }
        self.next_byte = end;
        self.buffer = 0;
        self.buffered = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Text-like runs with noise: every block type shows up across the levels.
                if i % 4096 < 3000 { b"the quick brown fox "[i % 20] } else { state as u8 }
            })
            .collect()
    }

    fn libdeflate(level: i32, data: &[u8]) -> Vec<u8> {
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
        let len = compressor.deflate_compress(data, &mut out).unwrap();
        out.truncate(len);
        out
    }

    fn zlib(level: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateEncoder::new(data, flate2::Compression::new(level)).read_to_end(&mut out).unwrap();
        out
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn finds_the_end_of_streams_of_every_block_type() {
        let data = sample(700_000);
        for input in [&data[..0], &data[..1], &data[..300], &data[..]] {
            for (what, stream) in (0..=12)
                .map(|level| (format!("libdeflate {level}"), libdeflate(level, input)))
                .chain((0..=9).map(|level| (format!("zlib {level}"), zlib(level, input))))
            {
                let last = final_block(&stream).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(last.end_bit.div_ceil(8), stream.len() as u64, "{what}");
                assert_eq!(stream[(last.header_bit / 8) as usize] >> (last.header_bit % 8) & 1, 1, "{what}");
            }
        }
    }

    #[test]
    fn streams_ended_with_a_sync_flush_can_be_followed() {
        let data = sample(900_000);
        let pieces = [&data[..0], &data[..12_345], &data[12_345..500_000], &data[500_000..]];
        for level in [0, 1, 6, 9, 12] {
            let mut joined = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let mut stream = libdeflate(level, piece);
                if i + 1 < pieces.len() {
                    end_with_sync_flush(&mut stream).unwrap();
                    assert_eq!(&stream[stream.len() - 4..], &[0, 0, 0xff, 0xff]);
                }
                joined.extend_from_slice(&stream);
            }
            assert_eq!(inflate(&joined), data, "level {level}");
        }
    }

    #[test]
    fn the_stored_block_is_placed_right_for_every_bit_offset_of_the_end() {
        // Where the last block ends within its byte decides whether the empty stored block's
        // header fits in that byte or needs one more: every offset must show up and decode.
        let data = sample(20_000);
        let mut offsets_seen = [false; 8];
        for (level, len) in [1, 6, 9].into_iter().flat_map(|level| (3000..3100).map(move |len| (level, len))) {
            let mut stream = libdeflate(level, &data[..len]);
            offsets_seen[(final_block(&stream).unwrap().end_bit % 8) as usize] = true;
            end_with_sync_flush(&mut stream).unwrap();
            stream.extend_from_slice(&libdeflate(level, &data[len..]));
            assert_eq!(inflate(&stream), data, "level {level}, first piece of {len} bytes");
        }
        assert_eq!(offsets_seen, [true; 8]);
    }

    #[test]
    fn malformed_streams_are_errors_and_never_panic() {
        let stream = libdeflate(6, &sample(200_000));
        for cut in [0, 1, 2, 10, stream.len() / 2, stream.len() - 1] {
            let mut truncated = stream[..cut].to_vec();
            assert!(end_with_sync_flush(&mut truncated).is_err(), "cut at {cut}");
            assert_eq!(truncated, stream[..cut]);
        }
        assert_eq!(final_block(&[0b111]), Err("a deflate block has the reserved type 3"));
        assert_eq!(final_block(&[0b001, 0, 0, 0, 0]), Err("a stored block's length check does not match"));
        // Flipped bits anywhere: an error or some structure, but no panic.
        let mut state = 1u32;
        for _ in 0..2000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut damaged = stream.clone();
            damaged[(state >> 8) as usize % stream.len()] ^= 1 << (state % 8);
            let _ = final_block(&damaged);
        }
    }
}
