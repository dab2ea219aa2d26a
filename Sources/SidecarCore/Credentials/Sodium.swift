import CSodium

/// libsodium, initialised exactly once for the whole process.
public enum Sodium {
    // A global `let` is initialised lazily and exactly once (swift_once), whichever thread gets
    // there first; `sodium_init` is itself safe to call again, this only spares the lock.
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium if it has not been; throws when it cannot be (no entropy source).
    public static func ensureInitialized() throws(CredentialError) {
        guard initialized else {
            throw CredentialError(
                .cryptoUnavailable, "libsodium could not initialise (no system random source?); check the host and try again")
        }
    }

    /// Fills a fresh array with bytes from the system's secure random source.
    public static func randomBytes(_ count: Int) throws(CredentialError) -> [UInt8] {
        try ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return bytes
    }
}

/// Standard base64 (RFC 4648 §4, with padding) over libsodium's constant-time codec.
enum StandardBase64 {
    /// Encodes bytes as standard padded base64.
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        let variant = Int32(sodium_base64_VARIANT_ORIGINAL)
        let capacity = sodium_base64_encoded_len(input.count, variant)
        var output = [CChar](repeating: 0, count: capacity)
        input.withUnsafeBufferPointer { source in
            _ = sodium_bin2base64(&output, capacity, source.baseAddress, source.count, variant)
        }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes standard padded base64; `nil` for anything else (other alphabets, whitespace, bad padding).
    static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        var output = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
        var written = 0
        var end: UnsafePointer<CChar>? = nil
        let result = input.withUnsafeBufferPointer { source in
            source.withMemoryRebound(to: CChar.self) { chars in
                sodium_base642bin(
                    &output, output.count, chars.baseAddress, chars.count, nil, &written, &end, Int32(sodium_base64_VARIANT_ORIGINAL))
            }
        }
        guard result == 0, written <= output.count else { return nil }
        // libsodium stops at the first byte it cannot decode; everything must have been consumed.
        let consumed = input.withUnsafeBufferPointer { source in
            source.withMemoryRebound(to: CChar.self) { chars in
                end.map { chars.baseAddress!.distance(to: $0) } ?? -1
            }
        }
        guard consumed == input.count else { return nil }
        return Array(output.prefix(written))
    }
}
