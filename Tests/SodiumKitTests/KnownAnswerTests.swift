import SodiumKit
import Testing

/// Published vectors, each also checked against PyNaCl (libsodium's Python binding) when written;
/// PyNaCl is not a dependency of these tests.
@Suite struct KnownAnswerTests {
    static func hex(_ text: String) -> [UInt8] { try! Hex.decode(text) }

    @Test("Ed25519: RFC 8032 §7.1 test 1 (empty message)")
    func ed25519RFC8032Test1() throws {
        let seed = SecretBytes(copying: Self.hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        let key = try Ed25519SigningKey(seed: seed)
        #expect(Hex.encode(key.publicKey) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature = key.sign([])
        #expect(
            Hex.encode(signature)
                == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
        #expect(Ed25519.verify(signature: signature, message: [], publicKey: key.publicKey))
        var forged = signature
        forged[0] ^= 1
        #expect(!Ed25519.verify(signature: forged, message: [], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: signature, message: [0], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: Array(signature.prefix(63)), message: [], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: signature, message: [], publicKey: Array(key.publicKey.prefix(31))))
    }

    @Test("Ed25519: a seed of the wrong length is refused, not trapped")
    func ed25519WrongSeed() {
        #expect(throws: CryptoError(.wrongLength, "")) { try Ed25519SigningKey(seed: SecretBytes.random(count: 31)) }
    }

    @Test("XChaCha20-Poly1305: draft-irtf-cfrg-xchacha §A.3.1 (libsodium's AEAD test vector)")
    func xchachaKnownAnswer() throws {
        let key = SecretBytes(copying: Array(0x80...0x9F))
        let nonce = Array(UInt8(0x40)...UInt8(0x57))
        let associated = Self.hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let sealed = try XChaCha20Poly1305.seal(SecretBytes(copying: plaintext), associatedData: associated, key: key, nonce: nonce)
        #expect(
            Hex.encode(sealed.ciphertext)
                == "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
                + "c0875924c1c7987947deafd8780acf49")
        let opened = try XChaCha20Poly1305.open(sealed, associatedData: associated, key: key)
        #expect(opened.withUnsafeBytes { Array($0) } == plaintext)
    }

    @Test("BLAKE2b-256 keyed (crypto_generichash) and SHA-256 (FIPS 180-2 \"abc\")")
    func hashes() {
        let key = Array(UInt8(0)...UInt8(31))
        #expect(
            Hex.encode(Hash.keyed(Array("The quick brown fox jumps over the lazy dog".utf8), key: key))
                == "5d9461aff732d77d0cc98725ea29298c914fd5193b4c08ec9e3ad6b28c3e2faf")
        #expect(Hex.encode(Hash.keyed([], key: key)) == "4e51e7a913fc80137da52880fecca175bf81e117d5c68126dc2774033517ea0d")
        #expect(Hex.encode(Hash.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(Hash.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // RFC 4231, test cases 2 and 6 (a key longer than the block).
        #expect(
            Hex.encode(Hash.hmacSHA256(Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(
            Hex.encode(
                Hash.hmacSHA256(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8), key: [UInt8](repeating: 0xaa, count: 131)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }
}
