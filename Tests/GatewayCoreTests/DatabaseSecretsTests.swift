import AgentWire
import Foundation
import GatewayCore
import SodiumKit
import Testing

/// The database is owner-only whatever the umask, and the hash key lives in a file outside it
/// (issue 11, item 5).
@Suite("Database file modes and the hash key file", .serialized)
struct DatabaseSecretsTests {
    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? nil
    }

    static func octal(_ mode: Int?) -> String { mode.map { String($0, radix: 8) } ?? "missing" }

    /// The `hash_key` row of the database (read through the store, as the gateway does).
    static func storedHashKeyRow(_ database: String) async throws -> String? {
        let store = try SQLiteGatewayStore(path: database)
        return try await store.read { try $0.setting("hash_key") }
    }

    static func failureOf(_ arguments: [String]) -> String {
        do {
            _ = try runGatewayCommand(arguments)
            return ""
        } catch { return "\(error)" }
    }

    @Test("under umask 022 the database, its -wal and -shm are 0600, and a directory the gateway makes is 0700")
    func databaseFilesAreOwnerOnly() async throws {
        // Issue 11: in an existing directory under umask 022, gw.sqlite, -wal and -shm were 0644.
        let existing = temporaryDirectory()
        let server = try await GatewayProcess.start(database: existing + "/gw.sqlite", shell: "umask 022")
        defer { server.stop() }
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.call("create_issue", ["project": "WEB", "title": "written while the modes are checked"]).1.isToolSuccess)
        for path in [server.database, server.database + "-wal", server.database + "-shm"] {
            #expect(Self.mode(path) == 0o600, "\(path) is \(Self.octal(Self.mode(path))), expected 600")
        }
        server.stop()

        // A directory that does not exist yet is made 0700, with its missing parents.
        let root = temporaryDirectory()
        let directory = root + "/state/agent-gateway"
        let database = directory + "/gateway.sqlite"
        try runGatewayCommand(["seed-demo", "--db", database], shell: "umask 022")
        for (path, expected) in [(root + "/state", 0o700), (directory, 0o700), (database, 0o600)] {
            #expect(Self.mode(path) == expected, "\(path) is \(Self.octal(Self.mode(path))), expected \(String(expected, radix: 8))")
        }

        // A database left readable by an older version is tightened when it is opened.
        for path in [database, database + "-wal", database + "-shm"] where FileManager.default.fileExists(atPath: path) {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        }
        try runGatewayCommand(["audit", "--db", database], shell: "umask 022")
        #expect(Self.mode(database) == 0o600, "reopened: \(Self.octal(Self.mode(database)))")
    }

    @Test("a database directory other users can write is refused with what to do")
    func writableDirectoryIsRefused() throws {
        let directory = temporaryDirectory() + "/writable-by-all"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory)
        let failure = Self.failureOf(["seed-demo", "--db", directory + "/gateway.sqlite"])
        #expect(failure.contains("is writable by other users"), "\(failure)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/gateway.sqlite"))
    }

    @Test("with --hash-key-file the key is made in that file (0600) and the database holds only a check")
    func newDatabaseKeepsItsKeyOutside() async throws {
        let directory = temporaryDirectory()
        let keyFile = directory + "/hash.key"
        let server = try await GatewayProcess.start(extraArguments: ["--hash-key-file", keyFile], shell: "umask 022")
        defer { server.stop() }
        #expect(Self.mode(keyFile) == 0o600, "the key file is \(Self.octal(Self.mode(keyFile)))")
        let text = try String(contentsOfFile: keyFile, encoding: .utf8)
        let keyHex = text.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(keyHex.count == 64 && (try? Hex.decode(keyHex)) != nil)
        // Pairing needs the same key in every command that hashes.
        let agent = try runGatewayCommand(
            [
                "agent", "create", "--db", server.database, "--hash-key-file", keyFile, "--owner", "alice", "--name", "a", "--project", "WEB",
                "--scope",
                "project:read",
            ])
        let code = try runGatewayCommand(["agent", "pair", "--db", server.database, "--hash-key-file", keyFile, agent])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.call("list_projects").1.isToolSuccess)
        server.stop()

        let row = try await Self.storedHashKeyRow(server.database)
        #expect(row?.hasPrefix("file:") == true)
        for path in [server.database, server.database + "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            let key = (try? Hex.decode(keyHex))!
            #expect(bytes.range(of: Data(keyHex.utf8)) == nil && bytes.range(of: Data(key)) == nil, "\(path) holds the hash key")
        }
        // Without the file the database cannot be used, and says why; a wrong file is told apart.
        #expect(Self.failureOf(["agent", "pair", "--db", server.database, agent]).contains("pass --hash-key-file"))
        #expect(Self.failureOf(["serve", "--db", server.database, "--port", "0"]).contains("pass --hash-key-file"))
        // Commands that hash nothing (listings, audit, revoke, block) work without it.
        #expect(try runGatewayCommand(["agent", "list", "--db", server.database]).contains(agent))
        let wrong = directory + "/wrong.key"
        try Data((String(repeating: "ab", count: 32) + "\n").utf8).write(to: URL(fileURLWithPath: wrong))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: wrong)
        #expect(
            Self.failureOf(["agent", "pair", "--db", server.database, "--hash-key-file", wrong, agent]).contains("does not hold this database's key"))
    }

    @Test("an existing database's stored key moves to a new --hash-key-file and keeps working")
    func storedKeyMovesOut() async throws {
        let directory = temporaryDirectory()
        let database = directory + "/gateway.sqlite"
        // Made the old way: the key in the setting table, and a pairing code hashed with it.
        try runGatewayCommand(["seed-demo", "--db", database])
        let agent = try runGatewayCommand([
            "agent", "create", "--db", database, "--owner", "alice", "--name", "a", "--project", "WEB", "--scope", "project:read",
        ])
        let code = try runGatewayCommand(["agent", "pair", "--db", database, agent])
        let stored = try #require(try await Self.storedHashKeyRow(database))
        #expect(stored.count == 64)

        let keyFile = directory + "/hash.key"
        let server = try await GatewayProcess.start(extraArguments: ["--hash-key-file", keyFile], database: database, seed: false)
        defer { server.stop() }
        let moved = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(moved == stored, "the key file does not hold the key the database had")
        #expect(try await Self.storedHashKeyRow(database)?.hasPrefix("file:") == true)
        // The code issued before the move still pairs: the key is the same.
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        #expect(try await client.call("list_projects").1.isToolSuccess)
    }

    @Test("a hash key file that is a FIFO, a link or readable by others is refused at once", arguments: ["fifo", "link", "0644"])
    func unsafeKeyFileIsRefused(kind: String) throws {
        let directory = temporaryDirectory()
        let database = directory + "/gateway.sqlite"
        let keyFile = directory + "/hash.key"
        let real = directory + "/real.key"
        try Data((String(repeating: "cd", count: 32) + "\n").utf8).write(to: URL(fileURLWithPath: real))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: real)
        defer { unlink(keyFile) }
        let expected: String
        switch kind {
        case "fifo":
            try #require(mkfifo(keyFile, 0o600) == 0)
            expected = "is not a regular file"
        case "link":
            try FileManager.default.createSymbolicLink(atPath: keyFile, withDestinationPath: real)
            expected = "is a symbolic link"
        default:
            try FileManager.default.copyItem(atPath: real, toPath: keyFile)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
            expected = "are too open; run chmod 600"
        }
        let started = Date()
        let failure = Self.failureOf(["seed-demo", "--db", database, "--hash-key-file", keyFile])
        #expect(failure.contains(expected), "\(failure)")
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
