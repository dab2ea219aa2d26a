import GRDB
import SodiumKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the backed-up database keeps its keyed-hash secret (see ``HashKey``).
public enum BackupHashKey: String, Sendable {
    /// The key is in a file (`--hash-key-file`); the backup holds only a check of it.
    case inFile = "file"
    /// The key is still in the database (made without `--hash-key-file`), so the backup holds it.
    case inDatabase = "database"
    /// The database has no key yet.
    case none
}

/// What one backup wrote.
public struct SQLiteBackupReport: Sendable {
    public let output: String
    public let bytes: Int64
    public let pages: Int
    public let hashKey: BackupHashKey
}

/// `agent-gateway backup`: a consistent copy of a SQLite database while a gateway serves it
/// (issue 18), with SQLite's online backup API.
///
/// The copy is one step of `sqlite3_backup_step` over a read transaction of the source: it is the
/// database as of one commit (every write committed before the backup began is in it, none is
/// half in it), and the gateway keeps writing meanwhile (WAL: readers never block the writer).
/// The output is written like ``AtomicFile``: a temporary file beside it, created `0600` with
/// `O_EXCL | O_NOFOLLOW` before SQLite opens it, switched to a rollback journal so it is one
/// self-contained file, checked (`PRAGMA quick_check`), `fsync`ed, then linked to the output name,
/// which fails rather than replace an existing file or write through a link.
public enum SQLiteBackup {
    public static func backup(database: String, to output: String) throws -> SQLiteBackupReport {
        try GatewayAdmin.requireExistingDatabase(database)
        try refuseExisting(output)
        let directory = FileSystem.directory(of: output)
        var info = stat()
        guard stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw AdminError(
                code: "backup_directory_missing",
                message: "the directory \(directory) for the backup does not exist; create it (mkdir -m 700 \(directory)) or name another path")
        }
        AtomicFile.removeLeftovers(of: output)
        let temporary = FileSystem.join(directory, ".\(FileSystem.lastComponent(of: output)).tmp-\(Hex.encode(try Sodium.randomBytes(6)))")
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw AdminError(
                code: "backup_unwritable",
                message: "cannot create a file in \(directory) (\(String(cString: strerror(errno)))); check that the directory is yours and writable")
        }
        fchmod(descriptor, 0o600)  // the umask may have taken bits away; exactly 0600
        close(descriptor)
        var linked = false
        defer {
            if !linked {
                for suffix in ["", "-journal", "-wal", "-shm"] { unlink(temporary + suffix) }
            }
        }

        let (pages, hashKey) = try copy(database: database, to: temporary)
        let synced = open(temporary, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard synced >= 0, fsync(synced) == 0 else {
            if synced >= 0 { close(synced) }
            throw AdminError(code: "backup_unwritable", message: "cannot flush the backup to disk in \(directory); check the disk")
        }
        close(synced)
        // link(2) never replaces an existing name, unlike rename(2): a file made at OUT meanwhile stays.
        guard link(temporary, output) == 0 else {
            if errno == EEXIST { try refuseExisting(output) }
            throw AdminError(
                code: "backup_unwritable", message: "cannot create \(output) (\(String(cString: strerror(errno)))); check the path and its directory")
        }
        linked = true
        unlink(temporary)
        AtomicFile.syncDirectory(directory)
        var written = stat()
        _ = stat(output, &written)
        return SQLiteBackupReport(output: output, bytes: Int64(written.st_size), pages: pages, hashKey: hashKey)
    }

    /// Refuses an output path that exists, a link above all (it was planted, or is a mistake).
    static func refuseExisting(_ output: String) throws(AdminError) {
        var info = stat()
        guard lstat(output, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            throw AdminError(code: "backup_exists", message: "\(output) is a symbolic link; backup writes no file through a link: name a new file")
        }
        throw AdminError(
            code: "backup_exists", message: "\(output) already exists; backup never overwrites a file: name a new file or move the old one away")
    }

    /// Copies the database into the empty file `destination`; returns its page count and where its hash key is.
    static func copy(database: String, to destination: String) throws -> (pages: Int, hashKey: BackupHashKey) {
        var sourceConfiguration = Configuration()
        sourceConfiguration.readonly = true
        sourceConfiguration.busyMode = .timeout(10)
        do {
            let source = try DatabaseQueue(path: database, configuration: sourceConfiguration)
            let isGatewayDatabase = try source.read { db in try db.tableExists("setting") && db.tableExists("auditEvent") }
            guard isGatewayDatabase else {
                throw AdminError(code: "backup_not_gateway", message: "\(database) is not an agent-gateway database; pass the file serve --db uses")
            }
            var destinationConfiguration = Configuration()
            destinationConfiguration.busyMode = .timeout(10)
            let copy = try DatabaseQueue(path: destination, configuration: destinationConfiguration)
            // One step (all pages): the copy is one snapshot, never restarted by the gateway's writes.
            try source.backup(to: copy)
            try source.close()
            let (pages, stored, check) = try copy.writeWithoutTransaction { db -> (Int, String?, String?) in
                // One self-contained file: the source's WAL mode came with its header.
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                let stored = try String.fetchOne(db, sql: "SELECT value FROM setting WHERE name = ?", arguments: [HashKey.settingName])
                let check = try String.fetchOne(db, sql: "PRAGMA quick_check")
                return (pages, stored, check)
            }
            try copy.close()
            guard check == "ok" else {
                throw AdminError(
                    code: "backup_damaged",
                    message:
                        "the copy of \(database) fails SQLite's quick_check (\(check ?? "no answer")); the database may be damaged: run PRAGMA integrity_check on it"
                )
            }
            let hashKey: BackupHashKey = stored.map { $0.hasPrefix(HashKey.filePrefix) ? .inFile : .inDatabase } ?? .none
            return (pages, hashKey)
        } catch let error as AdminError {
            throw error
        } catch let error as DatabaseError {
            throw AdminError(
                code: "backup_failed",
                message:
                    "cannot back up \(database): \(error.message ?? "SQLite error \(error.resultCode)"); check that it is an agent-gateway database and the disk has room"
            )
        }
    }
}
