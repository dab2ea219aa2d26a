import CSodium

/// Authenticated encryption with associated data: XChaCha20-Poly1305 (IETF), libsodium's
/// `crypto_aead_xchacha20poly1305_ietf`. The 24-byte nonce is random for every seal, so nonces
/// never repeat under one key in practice.
public enum XChaCha20Poly1305 {
    /// Bytes in a key.
    public static let keyLength = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    /// Bytes in a nonce.
    public static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    /// Bytes the tag adds to a ciphertext.
    public static let tagLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    /// A sealed message: the nonce it was sealed with, and the ciphertext followed by the tag.
    public struct Sealed: Sendable, Equatable {
        public let nonce: [UInt8]
        public let ciphertext: [UInt8]

        public init(nonce: [UInt8], ciphertext: [UInt8]) {
            self.nonce = nonce
            self.ciphertext = ciphertext
        }
    }

    /// Encrypts `plaintext` (read in place from guarded memory) under `key` with a fresh random nonce.
    ///
    /// - Throws: ``CryptoError/Kind-swift.enum/wrongLength`` when the key is not ``keyLength``
    ///   bytes, ``CryptoError/Kind-swift.enum/unavailable`` when there is no random source.
    public static func seal(_ plaintext: SecretBytes, associatedData: [UInt8], key: SecretBytes) throws(CryptoError) -> Sealed {
        try seal(plaintext, associatedData: associatedData, key: key, nonce: Sodium.randomBytes(nonceLength))
    }

    /// Encrypts with a given nonce: for known-answer tests. Production code uses the random-nonce form.
    public static func seal(
        _ plaintext: SecretBytes, associatedData: [UInt8], key: SecretBytes, nonce: [UInt8]
    ) throws(CryptoError) -> Sealed {
        try checkLengths(key: key, nonce: nonce)
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var ciphertextLength: UInt64 = 0
        let status = plaintext.withUnsafeBytes { message in
            key.withUnsafeBytes { keyBytes in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    &ciphertext, &ciphertextLength,
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                    associatedData, UInt64(associatedData.count), nil, nonce,
                    keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        // libsodium's encrypt only fails for messages longer than it can count (over 2^64 bytes).
        precondition(status == 0, "crypto_aead_xchacha20poly1305_ietf_encrypt failed (programmer error)")
        return Sealed(nonce: nonce, ciphertext: Array(ciphertext.prefix(Int(ciphertextLength))))
    }

    /// Decrypts and authenticates `sealed` under `key` straight into guarded memory.
    ///
    /// - Throws: ``CryptoError/Kind-swift.enum/authenticationFailed`` when any byte of the nonce,
    ///   ciphertext, tag, associated data or key differs from what was sealed;
    ///   ``CryptoError/Kind-swift.enum/wrongLength`` for a key, nonce or ciphertext of the wrong size.
    public static func open(_ sealed: Sealed, associatedData: [UInt8], key: SecretBytes) throws(CryptoError) -> SecretBytes {
        try checkLengths(key: key, nonce: sealed.nonce)
        guard sealed.ciphertext.count >= tagLength else {
            throw CryptoError(.wrongLength, "the ciphertext is shorter than its \(tagLength)-byte tag")
        }
        let ciphertext = sealed.ciphertext
        return try SecretBytes(count: ciphertext.count - tagLength) { (buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            var plaintextLength: UInt64 = 0
            // A zero-length plaintext still needs a valid pointer to write into.
            var spare: UInt8 = 0
            let status = key.withUnsafeBytes { keyBytes in
                withUnsafeMutablePointer(to: &spare) { sparePointer in
                    crypto_aead_xchacha20poly1305_ietf_decrypt(
                        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? sparePointer, &plaintextLength, nil,
                        ciphertext, UInt64(ciphertext.count), associatedData, UInt64(associatedData.count), sealed.nonce,
                        keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard status == 0, plaintextLength == UInt64(buffer.count) else {
                throw CryptoError(.authenticationFailed, "the ciphertext does not authenticate; it was altered or sealed under another key")
            }
        }
    }

    private static func checkLengths(key: SecretBytes, nonce: [UInt8]) throws(CryptoError) {
        guard key.count == keyLength else { throw CryptoError(.wrongLength, "an XChaCha20-Poly1305 key must be \(keyLength) bytes") }
        guard nonce.count == nonceLength else {
            throw CryptoError(.wrongLength, "an XChaCha20-Poly1305 nonce must be \(nonceLength) bytes")
        }
    }
}
