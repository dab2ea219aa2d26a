import CSodium

/// The libsodium primitives the gateway uses, behind names that say what they are for.
///
/// `sodium_init()` runs once, the first time any of these is used.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    /// Makes sure libsodium is initialised; traps when it cannot be, since nothing secure can follow.
    public static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }

    /// `count` bytes from the operating system's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) } }
        return bytes
    }

    /// A 32-byte BLAKE2b keyed hash (libsodium generichash) of `message` under `key`.
    public static func keyedHash(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        ensureInitialized()
        var output = [UInt8](repeating: 0, count: 32)
        let padded = message.isEmpty ? [0] : message
        _ = output.withUnsafeMutableBufferPointer { out in
            padded.withUnsafeBufferPointer { input in
                key.withUnsafeBufferPointer { keyBuffer in
                    crypto_generichash(
                        out.baseAddress!, 32, input.baseAddress!, UInt64(message.count), keyBuffer.baseAddress, keyBuffer.count)
                }
            }
        }
        return output
    }

    /// SHA-256 of `message` (libsodium crypto_hash_sha256).
    public static func sha256(_ message: [UInt8]) -> [UInt8] {
        ensureInitialized()
        var output = [UInt8](repeating: 0, count: 32)
        let padded = message.isEmpty ? [0] : message
        _ = output.withUnsafeMutableBufferPointer { out in
            padded.withUnsafeBufferPointer { input in
                crypto_hash_sha256(out.baseAddress!, input.baseAddress!, UInt64(message.count))
            }
        }
        return output
    }

    /// Verifies a detached Ed25519 signature.
    public static func verifyEd25519(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        ensureInitialized()
        guard signature.count == 64, publicKey.count == 32 else { return false }
        let padded = message.isEmpty ? [0] : message
        return signature.withUnsafeBufferPointer { sig in
            padded.withUnsafeBufferPointer { msg in
                publicKey.withUnsafeBufferPointer { key in
                    crypto_sign_verify_detached(sig.baseAddress!, msg.baseAddress, UInt64(message.count), key.baseAddress!) == 0
                }
            }
        }
    }

    /// Constant-time equality of two byte strings (lengths are not secret).
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        ensureInitialized()
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBufferPointer { a in
            rhs.withUnsafeBufferPointer { b in sodium_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }

    /// Base64 variants as libsodium names them.
    public enum Base64Variant: Int32, Sendable {
        case standard = 1
        case standardNoPadding = 3
        case urlSafe = 5
        case urlSafeNoPadding = 7
    }

    public static func base64Encode(_ bytes: [UInt8], variant: Base64Variant = .standard) -> String {
        ensureInitialized()
        let capacity = sodium_base64_encoded_len(bytes.count, variant.rawValue)
        var output = [CChar](repeating: 0, count: capacity)
        _ = output.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in
                sodium_bin2base64(out.baseAddress!, capacity, input.baseAddress, input.count, variant.rawValue)
            }
        }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes base64 of the given variant, or `nil` when the text is not valid base64.
    public static func base64Decode(_ text: String, variant: Base64Variant = .standard) -> [UInt8]? {
        ensureInitialized()
        let input = Array(text.utf8)
        if input.isEmpty { return [] }
        var output = [UInt8](repeating: 0, count: input.count)
        var length = 0
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { chars in
                    sodium_base642bin(out.baseAddress!, out.count, chars.baseAddress!, chars.count, nil, &length, nil, variant.rawValue)
                }
            }
        }
        guard status == 0 else { return nil }
        return Array(output.prefix(length))
    }

    /// Lower-case hexadecimal.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Parses lower- or upper-case hexadecimal, or `nil`.
    public static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}
