/// Crockford's base32 alphabet: no I, L, O or U, so codes read aloud are unambiguous.
public enum CrockfordBase32 {
    public static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Encodes the low `5 * count` bits of `value`, most significant first.
    public static func encode(_ value: UInt64, count: Int) -> String {
        var characters = [UInt8](repeating: 0, count: count)
        var remaining = value
        for position in stride(from: count - 1, through: 0, by: -1) {
            characters[position] = alphabet[Int(remaining & 0x1F)]
            remaining >>= 5
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// Maps one typed character to its value, accepting lower case and the usual confusions
    /// (O→0, I/L→1); `nil` for anything else.
    public static func value(of character: Character) -> UInt8? {
        guard let ascii = character.asciiValue else { return nil }
        switch ascii {
        case UInt8(ascii: "o"), UInt8(ascii: "O"): return 0
        case UInt8(ascii: "i"), UInt8(ascii: "I"), UInt8(ascii: "l"), UInt8(ascii: "L"): return 1
        default:
            let upper = (ascii >= UInt8(ascii: "a") && ascii <= UInt8(ascii: "z")) ? ascii - 32 : ascii
            guard let index = alphabet.firstIndex(of: upper) else { return nil }
            return UInt8(index)
        }
    }
}

/// A ULID: 48 bits of milliseconds since the Unix epoch, then 80 random bits, as 26 characters of
/// Crockford base32. Sortable by time, unique without coordination.
public struct ULID: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    public init(milliseconds: UInt64 = ULID.currentMilliseconds()) {
        var generator = SystemRandomNumberGenerator()
        let randomHigh = generator.next() & 0xFF_FFFF  // 24 bits
        let randomLow = generator.next()  // 64 bits, of which 56 are used
        // 26 characters = 130 bits: 2 padding bits + 48 time bits + 80 random bits.
        let time = CrockfordBase32.encode(milliseconds & 0xFFFF_FFFF_FFFF, count: 10)
        let randomA = CrockfordBase32.encode((randomHigh << 16) | (randomLow >> 48), count: 8)  // 40 bits
        let randomB = CrockfordBase32.encode(randomLow & 0xFF_FFFF_FFFF, count: 8)  // 40 bits
        self.text = time + randomA + randomB
    }

    public var description: String { text }

    public static func currentMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
