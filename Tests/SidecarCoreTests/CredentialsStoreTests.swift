import AgentWire
import Foundation
import SodiumKit
import SystemSupport
import Testing

@testable import SidecarCore

@Suite struct CredentialStoreTests {
    static func profile(_ key: DeviceKey, name: String = "default", deviceID: String = "dev_01") -> SidecarProfile {
        SidecarProfile(
            name: name, gatewayURL: "https://gw.example.com", deviceID: deviceID, deviceName: "laptop",
            agent: .init(id: "agt_1", name: "Builder"), owner: .init(id: "usr_1", name: "Ada"), publicKey: key.publicKeyBase64,
            createdAt: Timestamp.iso8601(1_700_000_000), grants: [.init(project: "web", name: "Web", scopes: ["issues:read"])])
    }

    struct Fixture {
        let directory: TemporaryDirectory
        let paths: SidecarPaths
        let store: CredentialStore

        init(environment: [String: String] = [:]) throws {
            directory = try TemporaryDirectory()
            paths = SidecarPaths(environment: ["AGENT_SIDECAR_HOME": directory.file("home")])
            store = CredentialStore(paths: paths, environment: environment)
        }

        func storeKey(_ key: DeviceKey, profile: String = "default", deviceID: String = "dev_01") throws {
            try store.store(key, profile: profile, deviceID: deviceID, keyEncryptionKeyFile: store.keyEncryptionKeyFile(profile: profile))
        }
    }

    @Test func storesAndLoadsTheDeviceKeyWithTightPermissions() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        let keyFile = fixture.paths.keyFile("default")
        let kekFile = fixture.paths.defaultKeyEncryptionKeyFile("default")
        #expect(fileMode(keyFile) == 0o600)
        #expect(fileMode(kekFile) == 0o600)
        #expect(fileMode(fixture.paths.keysDirectory) == 0o700)
        #expect(fileMode(fixture.directory.file("home")) == 0o700)

        let loaded = try fixture.store.loadDeviceKey(for: Self.profile(key))
        #expect(loaded.publicKey == key.publicKey)
        #expect(loaded.sign([9, 9]) == key.sign([9, 9]))

        // The key file holds no plaintext seed; the KEK is exactly 32 bytes.
        let envelope = try #require(try FileSystem.readFile(keyFile))
        let seed = key.seed.withUnsafeBytes { Array($0) }
        #expect(!String(decoding: envelope, as: UTF8.self).contains(Base64.encode(seed)))
        #expect(try FileSystem.readFile(kekFile)?.count == 32)
        let json = try JSONValue(parsing: envelope)
        #expect(json["format"]?.stringValue == "agent-sidecar/device-key")
        #expect(json["version"]?.intValue == 1)
        #expect(json["cipher"]?.stringValue == "xchacha20poly1305-ietf")
        #expect((try? Base64.decode(json["nonce"]?.stringValue ?? ""))?.count == 24)
    }

    @Test func anyChangedByteIsTampering() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        let keyFile = fixture.paths.keyFile("default")
        let original = try #require(try FileSystem.readFile(keyFile))
        var envelope = try JSONValue(parsing: original).objectValue!
        var ciphertext = (try? Base64.decode(envelope["ciphertext"]!.stringValue!))!
        ciphertext[5] ^= 0x01
        envelope["ciphertext"] = .string(Base64.encode(ciphertext))
        try AtomicFile.write(PrettyJSON.render(.object(envelope)), to: keyFile, permissions: .ownerOnly)
        #expect(throws: CredentialError(.credentialTampered, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }

        do {
            _ = try fixture.store.loadDeviceKey(for: Self.profile(key))
        } catch let error as CredentialError {
            #expect(error.message.contains("tampered or corrupted; ask the agent's owner for a new pairing code"))
        }

        try AtomicFile.write(Array(original.prefix(40)), to: keyFile, permissions: .ownerOnly)
        #expect(throws: CredentialError(.credentialTampered, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }
    }

    @Test func keyIsBoundToProfileAndDevice() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key, deviceID: "dev_01")
        // Same files, other device id recorded in the profile: authentication fails.
        #expect(throws: CredentialError(.credentialTampered, "")) {
            try fixture.store.loadDeviceKey(for: Self.profile(key, deviceID: "dev_02"))
        }
        // The key file of one profile copied over another's, with the other's KEK: fails too.
        try fixture.storeKey(DeviceKey.generate(), profile: "work", deviceID: "dev_01")
        let copied = try #require(try FileSystem.readFile(fixture.paths.keyFile("default")))
        try AtomicFile.write(copied, to: fixture.paths.keyFile("work"), permissions: .ownerOnly)
        try AtomicFile.write(
            try #require(try FileSystem.readFile(fixture.paths.defaultKeyEncryptionKeyFile("default"))),
            to: fixture.paths.defaultKeyEncryptionKeyFile("work"), permissions: .ownerOnly)
        #expect(throws: CredentialError(.credentialTampered, "")) {
            try fixture.store.loadDeviceKey(for: Self.profile(key, name: "work", deviceID: "dev_01"))
        }
    }

    @Test func anotherKeyEncryptionKeyCannotOpenIt() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        try AtomicFile.write(SecretBytes.random(count: 32), to: fixture.paths.defaultKeyEncryptionKeyFile("default"))
        #expect(throws: CredentialError(.credentialTampered, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }
    }

    @Test func refusesFilesOthersCanRead() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        let keyFile = fixture.paths.keyFile("default")
        chmod(keyFile, 0o644)
        do {
            _ = try fixture.store.loadDeviceKey(for: Self.profile(key))
            Issue.record("loaded a 0644 key file")
        } catch let error as CredentialError {
            #expect(error.code == .permissionsTooOpen)
            #expect(error.message == "permissions 0644 for \(keyFile) are too open; run `chmod 600 \(keyFile)`")
        }
        chmod(keyFile, 0o600)
        chmod(fixture.paths.defaultKeyEncryptionKeyFile("default"), 0o640)
        #expect(throws: CredentialError(.permissionsTooOpen, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }
        chmod(fixture.paths.defaultKeyEncryptionKeyFile("default"), 0o400)
        _ = try fixture.store.loadDeviceKey(for: Self.profile(key))
    }

    @Test func refusesDirectoriesOthersCanWrite() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        chmod(fixture.paths.keysDirectory, 0o770)
        #expect(throws: CredentialError(.unsafeDirectory, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }
        chmod(fixture.paths.keysDirectory, 0o755)
        _ = try fixture.store.loadDeviceKey(for: Self.profile(key))
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a file away"))
    func refusesFilesOfAnotherUser() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        chown(fixture.paths.keyFile("default"), 65534, 65534)
        #expect(throws: CredentialError(.notOwnedByUser, "")) { try fixture.store.loadDeviceKey(for: Self.profile(key)) }
    }

    @Test func keyEncryptionKeyCanLiveElsewhere() throws {
        let outside = try TemporaryDirectory()
        defer { outside.remove() }
        chmod(outside.path, 0o700)
        let kekPath = outside.file("credentials/agent-sidecar.kek")
        let fixture = try Fixture(environment: ["AGENT_SIDECAR_KEY_FILE": kekPath])
        defer { fixture.directory.remove() }
        #expect(fixture.store.keyEncryptionKeyFile(profile: "default") == kekPath)
        #expect(fixture.store.keyEncryptionKeyFile(profile: "default", explicitPath: "/x/y.kek") == "/x/y.kek")
        let key = DeviceKey.generate()
        try fixture.storeKey(key)
        #expect(FileSystem.exists(kekPath))
        #expect(!FileSystem.exists(fixture.paths.defaultKeyEncryptionKeyFile("default")))
        _ = try fixture.store.loadDeviceKey(for: Self.profile(key))

        // Without the variable the store looks in the default place and says what to do.
        let plain = CredentialStore(paths: fixture.paths, environment: [:])
        #expect(throws: CredentialError(.keyEncryptionKeyMissing, "")) { try plain.loadDeviceKey(for: Self.profile(key)) }
        // The path recorded in the profile, or an explicit one, finds it again.
        var recorded = Self.profile(key)
        recorded.keyEncryptionKeyFile = kekPath
        _ = try plain.loadDeviceKey(for: recorded)
        _ = try plain.loadDeviceKey(for: Self.profile(key), explicitKeyEncryptionKeyFile: kekPath)

        // A second setup reuses the provisioned KEK instead of replacing it.
        let before = try FileSystem.readFile(kekPath)
        try fixture.storeKey(DeviceKey.generate())
        #expect(try FileSystem.readFile(kekPath) == before)

        // Removal takes the key and a default-place KEK, never a KEK someone put elsewhere.
        let removed = try fixture.store.remove(profile: "default")
        #expect(removed == [fixture.paths.keyFile("default")])
        #expect(FileSystem.exists(kekPath))
    }

    @Test func missingKeyFileSaysRunSetup() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        #expect(throws: CredentialError(.keyMissing, "")) { try fixture.store.loadDeviceKey(for: Self.profile(DeviceKey.generate())) }
    }
}

@Suite struct ProfileStoreTests {
    @Test func roundTripsAndListsProfiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let paths = SidecarPaths(environment: ["AGENT_SIDECAR_HOME": directory.path])
        let store = ProfileStore(paths: paths)
        var profile = CredentialStoreTests.profile(DeviceKey.generate())
        profile.writtenFiles = [.init(path: "/p/AGENTS.md", kind: .agentsMarkdown), .init(path: "/c/config.toml", kind: .codex)]
        profile.keyEncryptionKeyFile = "/run/credentials/x/agent-sidecar.kek"
        try store.save(profile)
        #expect(try store.load("default") == profile)
        #expect(fileMode(paths.profileFile("default")) == 0o600)
        var work = profile
        work.name = "work"
        try store.save(work)
        #expect(store.names() == ["default", "work"])
        #expect(try store.remove("work"))
        #expect(store.names() == ["default"])
        #expect(throws: CredentialError(.profileNotFound, "")) { try store.load("work") }
        #expect(throws: CredentialError(.invalidProfileName, "")) { try store.load("../etc") }
    }

    @Test(arguments: ["default", "work-2", "a", "x_y", String(repeating: "a", count: 64)])
    func acceptsProfileNames(_ name: String) throws {
        try ProfileName.validate(name)
    }

    @Test(arguments: ["", "-x", "_x", "Work", "a/b", "a.b", "a b", String(repeating: "a", count: 65), "é"])
    func rejectsProfileNames(_ name: String) {
        #expect(throws: CredentialError(.invalidProfileName, "")) { try ProfileName.validate(name) }
    }

    @Test func layoutFollowsTheEnvironment() {
        let custom = SidecarPaths(environment: ["AGENT_SIDECAR_HOME": "/srv/sidecar", "HOME": "/home/u"])
        #expect(custom.profileFile("default") == "/srv/sidecar/profiles/default.json")
        #expect(custom.keyFile("default") == "/srv/sidecar/keys/default.key")
        #expect(custom.defaultKeyEncryptionKeyFile("work") == "/srv/sidecar/keys/work.kek")
        let xdg = SidecarPaths(environment: ["HOME": "/home/u"])
        #expect(xdg.profileFile("default") == "/home/u/.config/agent-sidecar/profiles/default.json")
        #expect(xdg.keyFile("default") == "/home/u/.local/state/agent-sidecar/keys/default.key")
        let moved = SidecarPaths(environment: ["HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "relative/ignored"])
        #expect(moved.profilesDirectory == "/cfg/agent-sidecar/profiles")
        #expect(moved.keysDirectory == "/home/u/.local/state/agent-sidecar/keys")
    }

    @Test func timestampsAreISO8601UTC() {
        #expect(Timestamp.iso8601(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.iso8601(1_700_000_000) == "2023-11-14T22:13:20Z")
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesWholeFilesAndLeavesNoTemporaries() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("a/b/c.txt")
        try AtomicFile.write(Array("one".utf8), to: path, permissions: .exactly(0o640))
        #expect(try directory.read("a/b/c.txt") == "one")
        #expect(fileMode(path) == 0o640)
        #expect(fileMode(directory.file("a")) == 0o700)
        try AtomicFile.write(Array("two".utf8), to: path, permissions: .preservingExisting(newFileMode: 0o644))
        #expect(try directory.read("a/b/c.txt") == "two")
        #expect(fileMode(path) == 0o640)
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory.file("a/b"))
        #expect(entries == ["c.txt"])
    }

    @Test func writesThroughSymlinksOfOrdinaryFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("dotfiles/config.toml", "x = 1\n", mode: 0o600)
        symlink(directory.file("dotfiles/config.toml"), directory.file("config.toml"))
        try AtomicFile.write(Array("x = 2\n".utf8), to: directory.file("config.toml"), permissions: .preservingExisting(newFileMode: 0o644))
        #expect(try directory.read("dotfiles/config.toml") == "x = 2\n")
        #expect(fileMode(directory.file("dotfiles/config.toml")) == 0o600)
        var info = stat()
        lstat(directory.file("config.toml"), &info)
        #expect(info.st_mode & S_IFMT == S_IFLNK)
    }

    @Test func failedWriteLeavesTheOldFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("locked/file", "old")
        chmod(directory.file("locked"), 0o500)
        defer { chmod(directory.file("locked"), 0o700) }
        // Root ignores directory permissions; the check only means something for other users.
        if geteuid() != 0 {
            #expect(throws: FileSystemError.self) {
                try AtomicFile.write(Array("new".utf8), to: directory.file("locked/file"), permissions: .ownerOnly)
            }
            #expect(try directory.read("locked/file") == "old")
        }
    }
}
