import CSodium

/// BLAKE2b (libsodium's generic hash), keyed or not, and SHA-256.
public enum Hash {
    /// Bytes of output of ``keyed(_:key:)`` and ``sha256(_:)``.
    public static let length = 32
    /// Bytes of a key for ``keyed(_:key:)``.
    public static let keyLength = Int(crypto_generichash_KEYBYTES)

    /// The 32-byte BLAKE2b hash of `message` under `key` (libsodium `crypto_generichash`).
    ///
    /// The key is the gateway's hash key, which its loader has checked is ``keyLength`` bytes (or
    /// empty, for an admin that never hashes): a key of another length is our bug, not input, and
    /// traps.
    public static func keyed(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        precondition(
            key.isEmpty || (Int(crypto_generichash_KEYBYTES_MIN)...Int(crypto_generichash_KEYBYTES_MAX)).contains(key.count),
            "a generichash key must be \(keyLength) bytes (programmer error)")
        Sodium.initializeIfPossible()
        var output = [UInt8](repeating: 0, count: length)
        let padded = message.isEmpty ? [0] : message
        _ = output.withUnsafeMutableBufferPointer { out in
            padded.withUnsafeBufferPointer { input in
                key.withUnsafeBufferPointer { keyBuffer in
                    crypto_generichash(
                        out.baseAddress!, length, input.baseAddress!, UInt64(message.count), keyBuffer.baseAddress, keyBuffer.count)
                }
            }
        }
        return output
    }

    /// HMAC-SHA-256 of `message` under `key` of any length (libsodium `crypto_auth_hmacsha256_*`).
    public static func hmacSHA256(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        Sodium.initializeIfPossible()
        var state = crypto_auth_hmacsha256_state()
        var output = [UInt8](repeating: 0, count: length)
        // An empty key is one zero byte of length 0 (a pointer is needed either way).
        let padded = key.isEmpty ? [0] : key
        padded.withUnsafeBufferPointer { keyBuffer in
            _ = crypto_auth_hmacsha256_init(&state, keyBuffer.baseAddress!, key.count)
        }
        message.withUnsafeBufferPointer { input in
            if let base = input.baseAddress { _ = crypto_auth_hmacsha256_update(&state, base, UInt64(input.count)) }
        }
        _ = output.withUnsafeMutableBufferPointer { out in crypto_auth_hmacsha256_final(&state, out.baseAddress!) }
        return output
    }

    /// SHA-256 of `message` (libsodium `crypto_hash_sha256`).
    public static func sha256(_ message: [UInt8]) -> [UInt8] {
        Sodium.initializeIfPossible()
        var output = [UInt8](repeating: 0, count: length)
        let padded = message.isEmpty ? [0] : message
        _ = output.withUnsafeMutableBufferPointer { out in
            padded.withUnsafeBufferPointer { input in
                crypto_hash_sha256(out.baseAddress!, input.baseAddress!, UInt64(message.count))
            }
        }
        return output
    }
}
