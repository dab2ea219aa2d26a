import AgentWire
import SodiumKit
import Testing

@testable import SidecarCore

@Suite struct SecretBytesTests {
    @Test func holdsTheBytesAndNeverPrintsThem() {
        let secret = SecretBytes(copying: Array("hunter2-super-secret".utf8))
        #expect(secret.count == 20)
        #expect(secret.withUnsafeBytes { Array($0) } == Array("hunter2-super-secret".utf8))
        #expect("\(secret)" == "<redacted 20 bytes>")
        #expect(String(reflecting: secret) == "<redacted 20 bytes>")
        var dumped = ""
        dump(secret, to: &dumped)
        #expect(!dumped.contains("hunter2"))
    }

    @Test func randomSecretsDifferAndCompareInConstantTime() {
        let first = SecretBytes.random(count: 32)
        let second = SecretBytes.random(count: 32)
        #expect(!first.constantTimeEquals(second))
        #expect(first.constantTimeEquals(SecretBytes(copying: first.withUnsafeBytes { Array($0) })))
        #expect(!first.constantTimeEquals(SecretBytes.random(count: 16)))
    }

    @Test func emptySecretIsUsable() {
        let empty = SecretBytes(copying: [])
        #expect(empty.count == 0)
        #expect(empty.withUnsafeBytes { $0.count } == 0)
    }

    @Test func concurrentReadersDoNotFault() async {
        let secret = SecretBytes.random(count: 64)
        let expected = secret.withUnsafeBytes { Array($0) }
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    (0..<500).allSatisfy { _ in secret.withUnsafeBytes { Array($0) } == expected }
                }
            }
            for await ok in group { #expect(ok) }
        }
    }

    @Test func failingInitializerReleasesTheMemory() {
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            _ = try SecretBytes(count: 8) { (_: UnsafeMutableRawBufferPointer) throws(Refused) in throw Refused() }
        }
    }
}

@Suite struct DeviceKeyTests {
    @Test func signsChallengesTheGatewayCanVerify() throws {
        let key = DeviceKey.generate()
        #expect(key.publicKey.count == 32)
        #expect((try? Base64.decode(key.publicKeyBase64)) == key.publicKey)
        let message = SessionChallenge.message(origin: "https://gw.example.com", deviceID: "dev_1", timestamp: 1_700_000_000, nonce: "bm9uY2U=")
        let signature = key.sign(message)
        #expect(signature.count == 64)
        #expect(DeviceKey.verify(signature: signature, message: message, publicKey: key.publicKey))
        var tampered = message
        tampered[0] ^= 1
        #expect(!DeviceKey.verify(signature: signature, message: tampered, publicKey: key.publicKey))
        #expect(!DeviceKey.verify(signature: signature, message: message, publicKey: DeviceKey.generate().publicKey))
    }

    @Test func sameSeedSameKey() throws {
        let key = DeviceKey.generate()
        let copy = try DeviceKey(seed: SecretBytes(copying: key.seed.withUnsafeBytes { Array($0) }))
        #expect(copy.publicKey == key.publicKey)
        // Ed25519 signatures are deterministic.
        #expect(copy.sign([1, 2, 3]) == key.sign([1, 2, 3]))
        #expect(!"\(key)".contains(Base64.encode(key.seed.withUnsafeBytes { Array($0) })))
    }

    @Test func rejectsSeedsOfTheWrongLength() {
        #expect(throws: CredentialError(.malformedKeyFile, "")) { try DeviceKey(seed: SecretBytes.random(count: 31)) }
    }

    @Test func base64MatchesRFC4648Vectors() {
        let vectors: [(String, String)] = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect((try? Base64.decode(encoded)) == Array(plain.utf8))
        }
        #expect((try? Base64.decode("Zm9v YmFy")) == nil)
        #expect((try? Base64.decode("Zm9vYg")) == nil)
        #expect((try? Base64.decode("Zm9vYg==x")) == nil)
    }
}

@Suite struct GatewayOriginTests {
    @Test(arguments: [
        ("https://GW.Example.com", "https://gw.example.com", "https://gw.example.com"),
        ("https://gw.example.com:443/", "https://gw.example.com", "https://gw.example.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:80", "http://localhost", "http://localhost"),
        ("https://gw.example.com:8443/base/", "https://gw.example.com:8443", "https://gw.example.com:8443/base"),
        ("http://[::1]:9000", "http://[::1]:9000", "http://[::1]:9000"),
    ])
    func normalises(_ input: String, _ origin: String, _ base: String) throws {
        let parsed = try #require(GatewayOrigin(input))
        #expect(parsed.origin == origin)
        #expect(parsed.baseURL == base)
        #expect(parsed.url("/api/v1/sessions") == base + "/api/v1/sessions")
    }

    @Test(arguments: ["gw.example.com", "ftp://x", "https://", "https://user:pw@gw", "https://gw/?a=1", "https://gw:0", "https://gw:99999"])
    func rejects(_ input: String) {
        #expect(GatewayOrigin(input) == nil)
    }
}
