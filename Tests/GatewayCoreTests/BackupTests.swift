import AgentWire
import Foundation
import GatewayCore
import Synchronization
import TestSupport
import Testing

/// `agent-gateway backup` (issue 18): SQLite's online backup of a database a real `serve` process
/// is writing to, restored and served again.
@Suite("agent-gateway backup: online SQLite backup and restore")
struct BackupTests {
    /// What the writers saw, and when to stop.
    final class Ledger: Sendable {
        let state = Mutex<(acknowledged: Set<String>, stop: Bool)>(([], false))
        func acknowledged(_ key: String) { state.withLock { _ = $0.acknowledged.insert(key) } }
        var acknowledged: Set<String> { state.withLock { $0.acknowledged } }
        var stopped: Bool { state.withLock { $0.stop } }
        func stop() { state.withLock { $0.stop = true } }
    }

    /// `writers` concurrent writers creating issues titled by their key until told to stop (at most
    /// `limit` each); a write counts once its successful result came back.
    static func write(client: AgentClient, writers: Int, limit: Int, ledger: Ledger) async {
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<limit where !ledger.stopped {
                        let key = "backup-w\(writer)-n\(index)"
                        let arguments: JSONValue = ["project": "WEB", "title": .string(key), "description": "written during a backup"]
                        guard let (answer, result) = try? await client.call("create_issue", arguments, idempotencyKey: key),
                            answer.status == 200, result.isToolSuccess
                        else { continue }
                        ledger.acknowledged(key)
                    }
                }
            }
        }
    }

    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test("a backup under write load holds every write acknowledged before it began, and serve answers on the restored copy")
    func backupUnderWriteLoadRestores() async throws {
        let keys = temporaryDirectory()
        let keyFile = keys + "/hash.key"
        let server = try await GatewayProcess.start(extraArguments: ["--write-rate", "100000", "--hash-key-file", keyFile])
        defer { server.stop() }
        let agentID = try server.admin([
            "agent", "create", "--owner", "alice", "--name", "writer", "--project", "WEB", "--scope", Scope.projectRead, Scope.issueCreate,
        ])
        let code = try server.admin(["agent", "pair", agentID, "--hash-key-file", keyFile])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        let ledger = Ledger()
        let writes = Task { await Self.write(client: client, writers: 6, limit: 400, ledger: ledger) }

        // Let the load get going, then take the backup while it runs.
        var waited = 0
        while ledger.acknowledged.count < 30, waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        let before = ledger.acknowledged
        #expect(before.count >= 30, "the writers acknowledged only \(before.count) writes in 60 s")
        let backupDirectory = temporaryDirectory()
        let backup = backupDirectory + "/gateway-backup.sqlite"
        let database = server.database
        let printed = try await offThePool { try runGatewayCommand(["backup", "--db", database, backup, "--json"]) }
        let during = ledger.acknowledged.count
        // The writers go on after the backup (a few more writes, bounded by a minute), then stop.
        waited = 0
        while ledger.acknowledged.count < min(during + 10, 6 * 400), waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        ledger.stop()
        await writes.value
        let after = ledger.acknowledged

        let report = try JSONValue(parsing: Array(printed.utf8))
        #expect(report["output"]?.stringValue == backup)
        #expect(report["hashKey"]?.stringValue == "file", "the key is in --hash-key-file, so the backup must not hold it")
        #expect(Self.mode(backup) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: backup + "-wal") && !FileManager.default.fileExists(atPath: backup + "-journal"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: backupDirectory) == ["gateway-backup.sqlite"], "no temporary file is left")
        #expect(try CrashTests.sql(backup, "PRAGMA integrity_check") == ["ok"])
        #expect(try CrashTests.sql(backup, "PRAGMA journal_mode") == ["delete"], "the backup is one self-contained file")
        let key = String(decoding: try Data(contentsOf: URL(fileURLWithPath: keyFile)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let backupBytes = try Data(contentsOf: URL(fileURLWithPath: backup))
        #expect(backupBytes.range(of: Data(key.utf8)) == nil, "the hash key is in the backup")

        let titles = Set(try CrashTests.sql(backup, "SELECT title FROM issue WHERE title LIKE 'backup-w%'"))
        let missing = before.subtracting(titles)
        #expect(missing.isEmpty, "\(missing.count) writes acknowledged before the backup began are not in it: \(missing.sorted().prefix(5))")
        #expect(after.count > during || after.count == 6 * 400, "the gateway kept taking writes after the backup")

        // Restore as docs/operations.md says: stop, copy back, start with the same key file.
        server.stop()
        let restoredDirectory = temporaryDirectory()
        let restored = restoredDirectory + "/gateway.sqlite"
        try FileManager.default.copyItem(atPath: backup, toPath: restored)
        let again = try await GatewayProcess.start(extraArguments: ["--hash-key-file", keyFile], database: restored, seed: false)
        defer { again.stop() }
        // The device's session is in the backup (it was made before), so the same token works.
        var resumed = client.at(again.url)
        try await resumed.initialize()
        let sample = before.sorted().first!
        let (answer, found) = try await resumed.call("search_issues", ["project": "WEB", "query": .string(sample)])
        #expect(answer.status == 200 && found.isToolSuccess, "\(answer.status) \(found)")
        #expect(String(describing: found).contains(sample))
        let (created, result) = try await resumed.call(
            "create_issue", ["project": "WEB", "title": "after the restore", "description": "x"], idempotencyKey: "after-restore")
        #expect(created.status == 200 && result.isToolSuccess, "the restored database takes writes: \(result)")
        // Without the key file the restored database is refused, with a line saying which file it needs.
        let refused = try await offThePool { try runGatewayCommandResult(["agent", "pair", agentID, "--db", restored]) }
        #expect(refused.status != 0 && refused.stderr.contains("--hash-key-file"))
    }

    @Test("a database that keeps its own hash key: the backup holds it and says so")
    func keyInDatabaseIsReported() async throws {
        let directory = temporaryDirectory()
        let database = directory + "/gateway.sqlite"
        _ = try await offThePool { try runGatewayCommand(["seed-demo", "--db", database]) }
        let backup = directory + "/copy.sqlite"
        let result = try await offThePool { try runGatewayCommandResult(["backup", "--db", database, backup]) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("backed up \(database) to \(backup)"))
        #expect(result.stderr.contains("the hash key is in the backup"))
        #expect(try CrashTests.sql(backup, "SELECT count(*) FROM project") == ["2"])
        #expect(Self.mode(backup) == 0o600)
    }

    @Test("refused: an existing OUT, a link at OUT, a missing database, a PostgreSQL URL")
    func refusals() async throws {
        let directory = temporaryDirectory()
        let database = directory + "/gateway.sqlite"
        _ = try await offThePool { try runGatewayCommand(["init", "--db", database]) }

        let existing = directory + "/existing.sqlite"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        let overwrite = try await offThePool { try runGatewayCommandResult(["backup", "--db", database, existing]) }
        #expect(overwrite.status != 0 && overwrite.stderr.contains("already exists"), "\(overwrite.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: existing)) == Data("keep me".utf8))

        let target = directory + "/target"
        let link = directory + "/link.sqlite"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let throughLink = try await offThePool { try runGatewayCommandResult(["backup", "--db", database, link]) }
        #expect(throughLink.status != 0 && throughLink.stderr.contains("symbolic link"), "\(throughLink.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target))

        let missing = try await offThePool { try runGatewayCommandResult(["backup", "--db", directory + "/nope.sqlite", directory + "/out.sqlite"]) }
        #expect(missing.status != 0 && missing.stderr.contains("there is no database"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nope.sqlite"), "backup must not create the database")

        let postgres = try await offThePool {
            try runGatewayCommandResult(["backup", "--db", "postgres://gateway:s3cret-pw@127.0.0.1:1/gateway", directory + "/pg.sqlite"])
        }
        #expect(postgres.status != 0)
        #expect(postgres.stderr.contains("pg_dump") && postgres.stderr.contains("pg_basebackup"), "\(postgres.stderr)")
        #expect(!postgres.stderr.contains("s3cret-pw"))
        #expect(postgres.stderr.split(separator: "\n").count == 1, "one line: \(postgres.stderr)")
    }
}
