import CSodium

/// RFC 4648 base64 over libsodium's constant-time codec (`sodium_bin2base64` / `sodium_base642bin`),
/// so encoding a key or a token does not leak it through timing.
public enum Base64 {
    /// The alphabets and paddings libsodium knows, by libsodium's numbers.
    public enum Variant: Int32, Sendable {
        /// Standard alphabet, padded (RFC 4648 §4).
        case standard = 1
        case standardNoPadding = 3
        /// URL- and filename-safe alphabet, padded (RFC 4648 §5).
        case urlSafe = 5
        case urlSafeNoPadding = 7
    }

    /// Encodes `bytes` in the given variant.
    public static func encode(_ bytes: some Collection<UInt8>, variant: Variant = .standard) -> String {
        let input = Array(bytes)
        let capacity = sodium_base64_encoded_len(input.count, variant.rawValue)
        var output = [CChar](repeating: 0, count: capacity)
        input.withUnsafeBufferPointer { source in
            _ = sodium_bin2base64(&output, capacity, source.baseAddress, source.count, variant.rawValue)
        }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes text of exactly the given variant; throws for anything else (another alphabet,
    /// whitespace, wrong or missing padding, trailing bytes).
    public static func decode(_ text: String, variant: Variant = .standard) throws(CryptoError) -> [UInt8] {
        let input = Array(text.utf8)
        if input.isEmpty { return [] }
        var output = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
        var written = 0
        // With a NULL end pointer, libsodium fails unless it consumed the whole input.
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { chars in
                    sodium_base642bin(out.baseAddress!, out.count, chars.baseAddress!, chars.count, nil, &written, nil, variant.rawValue)
                }
            }
        }
        guard status == 0, written <= output.count else {
            throw CryptoError(.malformedEncoding, "the text is not valid base64 (\(variant)); send the value exactly as it was issued")
        }
        return Array(output.prefix(written))
    }
}

/// Lower-case hexadecimal over libsodium's constant-time codec (`sodium_bin2hex` / `sodium_hex2bin`).
public enum Hex {
    /// Lower-case hexadecimal of `bytes`.
    public static func encode(_ bytes: [UInt8]) -> String {
        var output = [CChar](repeating: 0, count: bytes.count * 2 + 1)
        bytes.withUnsafeBufferPointer { source in
            _ = sodium_bin2hex(&output, output.count, source.baseAddress, source.count)
        }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Parses lower- or upper-case hexadecimal of even length; throws for anything else.
    public static func decode(_ text: String) throws(CryptoError) -> [UInt8] {
        let input = Array(text.utf8)
        if input.isEmpty { return [] }
        var output = [UInt8](repeating: 0, count: input.count / 2 + 1)
        var written = 0
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { chars in
                    sodium_hex2bin(out.baseAddress!, out.count, chars.baseAddress!, chars.count, nil, &written, nil)
                }
            }
        }
        guard status == 0, input.count % 2 == 0, written == input.count / 2 else {
            throw CryptoError(.malformedEncoding, "the text is not hexadecimal; write the value as an even number of 0-9a-f digits")
        }
        return Array(output.prefix(written))
    }
}
