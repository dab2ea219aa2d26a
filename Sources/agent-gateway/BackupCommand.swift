import AgentWire
import ArgumentParser
import GatewayCore
import SystemSupport

/// `agent-gateway backup --db FILE OUT`: SQLite's online backup, safe while `serve` runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a SQLite database into a new file while the gateway serves it (SQLite's online backup).",
        discussion: """
            The copy is the database as of one commit: every write acknowledged before the backup began is in it. \
            OUT is created 0600 and never replaces a file or follows a link. The hash key is in the backup only \
            when the database still keeps it (databases made without --hash-key-file); otherwise keep the key file \
            with the backup. Restore: stop the gateway, copy the backup over the database, start it (docs/operations.md). \
            PostgreSQL databases are backed up with pg_dump or pg_basebackup.
            """)

    @Option(name: [.customLong("db"), .customLong("database")], help: "The SQLite database file the gateway serves.")
    var db: String

    @Argument(help: "The backup file to create (must not exist).")
    var output: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        if PostgresURL.isPostgres(db) {
            throw CommandFailure(
                description:
                    "backup copies SQLite databases only; back up PostgreSQL with its own tools: pg_dump (a logical dump) or pg_basebackup (a physical copy), see docs/operations.md"
            )
        }
        let (database, output) = (db, output)
        let report: SQLiteBackupReport
        do {
            report = try await onOwnThread { try SQLiteBackup.backup(database: database, to: output) }
        } catch { throw fail(error) }
        let note: String
        switch report.hashKey {
        case .inFile:
            note = "the hash key is not in the backup (it is in the --hash-key-file); keep that file with the backup, the restored database needs it"
        case .inDatabase:
            note =
                "the hash key is in the backup (this database keeps it; move it out with --hash-key-file FILE): guard the backup like the key itself"
        case .none:
            note = "the database has no hash key yet"
        }
        if json {
            printLine(
                JSONValue.object([
                    "output": .string(report.output), "bytes": .int(Int(report.bytes)), "pages": .int(report.pages),
                    "hashKey": .string(report.hashKey.rawValue),
                ]).jsonText)
        } else {
            printLine("backed up \(database) to \(report.output) (\(report.bytes) bytes, 0600)")
            FileHandleOutput.standardError("note: \(note)\n")
        }
    }
}

/// Runs blocking work (SQLite's backup, file syncs) on a thread of its own, off the cooperative pool.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        startDetachedThread(name: "agent-gateway-backup") { continuation.resume(with: Result { try body() }) }
    }
}
