import SodiumKit
import Testing

/// Hostile or damaged input is refused with a thrown error, never a trap or a partial result.
@Suite struct RefusalTests {
    @Test("base64: RFC 4648 §10 vectors in every variant, and malformed text refused")
    func base64() throws {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(try Base64.decode(encoded) == Array(plain.utf8))
            let unpadded = String(encoded.prefix { $0 != "=" })
            #expect(Base64.encode(Array(plain.utf8), variant: .standardNoPadding) == unpadded)
            #expect(try Base64.decode(unpadded, variant: .urlSafeNoPadding) == Array(plain.utf8))
        }
        #expect(Base64.encode([0xFB, 0xFF], variant: .urlSafeNoPadding) == "-_8")
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
        for malformed in ["Zm9v YmFy", "Zm9vYg", "Zm9vYg==x", "Zm9vYg=", "Zm9v\n", "-_8=", "Zm9vYg===", "é", "\u{0}"] {
            #expect(throws: CryptoError(.malformedEncoding, ""), "\(malformed)") { try Base64.decode(malformed) }
        }
        #expect(throws: CryptoError(.malformedEncoding, "")) { try Base64.decode("+/8", variant: .urlSafeNoPadding) }
        #expect(throws: CryptoError(.malformedEncoding, "")) { try Base64.decode("Zg==", variant: .standardNoPadding) }
    }

    @Test("hex: round trip, either case in, lower case out; odd length and non-digits refused")
    func hex() throws {
        #expect(Hex.encode([0x00, 0xAB, 0xFF]) == "00abff")
        #expect(try Hex.decode("00ABff") == [0x00, 0xAB, 0xFF])
        #expect(try Hex.decode("") == [])
        for malformed in ["0", "abc", "zz", "00 11", "0x00", "é0"] {
            #expect(throws: CryptoError(.malformedEncoding, ""), "\(malformed)") { try Hex.decode(malformed) }
        }
    }

    @Test("AEAD: any altered byte, other associated data or another key fails authentication")
    func tamperedAEADRefused() throws {
        let key = SecretBytes.random(count: XChaCha20Poly1305.keyLength)
        let associated = Array("profile\ndevice".utf8)
        let secret = SecretBytes.random(count: 32)
        let sealed = try XChaCha20Poly1305.seal(secret, associatedData: associated, key: key)
        #expect(sealed.nonce.count == XChaCha20Poly1305.nonceLength)
        #expect(sealed.ciphertext.count == 32 + XChaCha20Poly1305.tagLength)
        #expect(try XChaCha20Poly1305.open(sealed, associatedData: associated, key: key).constantTimeEquals(secret))

        let refused = CryptoError(.authenticationFailed, "")
        for index in sealed.ciphertext.indices {
            var ciphertext = sealed.ciphertext
            ciphertext[index] ^= 0x01
            #expect(throws: refused) {
                try XChaCha20Poly1305.open(.init(nonce: sealed.nonce, ciphertext: ciphertext), associatedData: associated, key: key)
            }
        }
        var nonce = sealed.nonce
        nonce[23] ^= 0x80
        #expect(throws: refused) {
            try XChaCha20Poly1305.open(.init(nonce: nonce, ciphertext: sealed.ciphertext), associatedData: associated, key: key)
        }
        #expect(throws: refused) { try XChaCha20Poly1305.open(sealed, associatedData: associated + [0], key: key) }
        #expect(throws: refused) {
            try XChaCha20Poly1305.open(sealed, associatedData: associated, key: SecretBytes.random(count: XChaCha20Poly1305.keyLength))
        }
        // Wrong sizes, as a damaged file would give them, are refused too.
        let wrongLength = CryptoError(.wrongLength, "")
        #expect(throws: wrongLength) { try XChaCha20Poly1305.open(.init(nonce: [], ciphertext: sealed.ciphertext), associatedData: [], key: key) }
        #expect(throws: wrongLength) {
            try XChaCha20Poly1305.open(.init(nonce: sealed.nonce, ciphertext: Array(sealed.ciphertext.prefix(15))), associatedData: [], key: key)
        }
        #expect(throws: wrongLength) { try XChaCha20Poly1305.open(sealed, associatedData: associated, key: SecretBytes.random(count: 16)) }
        #expect(throws: wrongLength) { try XChaCha20Poly1305.seal(secret, associatedData: [], key: SecretBytes.random(count: 31)) }
    }

    @Test("AEAD: an empty plaintext seals to a bare tag and opens to an empty secret")
    func emptyPlaintext() throws {
        let key = SecretBytes.random(count: XChaCha20Poly1305.keyLength)
        let sealed = try XChaCha20Poly1305.seal(SecretBytes(copying: []), associatedData: [1, 2, 3], key: key)
        #expect(sealed.ciphertext.count == XChaCha20Poly1305.tagLength)
        #expect(try XChaCha20Poly1305.open(sealed, associatedData: [1, 2, 3], key: key).count == 0)
    }

    @Test("random bytes: the asked count, and two draws differ")
    func randomBytes() throws {
        #expect(try Sodium.randomBytes(0) == [])
        let first = try Sodium.randomBytes(32)
        let second = try RandomSource.system().bytes(32)
        #expect(first.count == 32 && second.count == 32 && first != second)
        #expect(Sodium.constantTimeEqual(first, first) && !Sodium.constantTimeEqual(first, second))
        #expect(!Sodium.constantTimeEqual(first, Array(first.prefix(31))))
        var wiped = first
        Sodium.wipe(&wiped)
        #expect(wiped == [UInt8](repeating: 0, count: 32))
    }

    @Test("secret bytes never print their content")
    func secretBytesRedacted() {
        let secret = SecretBytes(copying: Array("hunter2".utf8))
        #expect("\(secret)" == "<redacted 7 bytes>")
        #expect(String(reflecting: secret) == "<redacted 7 bytes>")
        let key = Ed25519SigningKey.generate()
        #expect(!"\(key)".contains(Base64.encode(key.seed.withUnsafeBytes { Array($0) })))
    }
}
