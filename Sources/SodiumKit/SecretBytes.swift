import CSodium

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A secret (a private key, a key-encryption key, a session token) kept out of the ordinary heap.
///
/// The bytes live in memory from `sodium_malloc`: locked so they are never swapped out, fenced
/// by guard pages, and kept inaccessible (`PROT_NONE`) except while ``withUnsafeBytes(_:)`` runs.
/// On deinit they are zeroed and freed by `sodium_free`. The value never prints its content:
/// `description`, `debugDescription` and reflection all show `<redacted N bytes>`.
///
/// What this does not do: it cannot stop another process running as the same user from reading
/// the sidecar's memory with a debugger or `/proc/PID/mem` (see docs/security.md), and copies that
/// a caller makes from inside ``withUnsafeBytes(_:)`` are the caller's to protect.
public final class SecretBytes: @unchecked Sendable {
    // Safety: `pointer` is written only while the instance is being created (before it escapes)
    // and read under `access`, which also keeps the page protection consistent between threads.
    private let pointer: UnsafeMutableRawPointer
    /// The number of secret bytes.
    public let count: Int
    private let access: ProtectionLock

    /// Allocates `count` bytes of secure memory and lets `initializer` fill them.
    ///
    /// - Parameters:
    ///   - count: The size of the secret.
    ///   - initializer: Writes the secret into the buffer; when it throws, the memory is wiped and freed.
    public init<E: Error>(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void) throws(E) {
        do {
            try Sodium.ensureInitialized()
        } catch {
            // Not input: the host has no random source. Nothing secure can follow, as after a
            // failed allocation.
            fatalError("libsodium is unavailable: \(error.message)")
        }
        // sodium_malloc(0) may return NULL; one byte keeps the guard pages and the code paths uniform.
        // Not input either: locked memory is exhausted (RLIMIT_MEMLOCK), like any failed allocation.
        guard let pointer = sodium_malloc(max(count, 1)) else {
            fatalError("sodium_malloc could not allocate \(count) bytes of locked memory (RLIMIT_MEMLOCK?)")
        }
        sodium_memzero(pointer, max(count, 1))
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            sodium_free(pointer)
            throw error
        }
        self.pointer = pointer
        self.count = count
        self.access = ProtectionLock()
        sodium_mprotect_noaccess(pointer)
    }

    /// Copies `bytes` into secure memory. The source is the caller's to wipe.
    public convenience init(copying bytes: some Collection<UInt8>) {
        let source = Array(bytes)
        self.init(count: source.count) { (buffer: UnsafeMutableRawBufferPointer) in
            buffer.copyBytes(from: source)
        }
    }

    /// `count` bytes from the system's secure random source, generated directly in secure memory.
    public static func random(count: Int) -> SecretBytes {
        SecretBytes(count: count) { (buffer: UnsafeMutableRawBufferPointer) in
            if count > 0 { randombytes_buf(buffer.baseAddress!, count) }
        }
    }

    deinit {
        sodium_mprotect_readwrite(pointer)
        // sodium_free zeroes the region before unmapping it.
        sodium_free(pointer)
    }

    /// Gives `body` read access to the secret. Do not let the pointer escape, and wipe any copy.
    public func withUnsafeBytes<Result, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> Result) throws(E) -> Result {
        access.beginRead(pointer)
        defer { access.endRead(pointer) }
        return try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Compares two secrets in constant time (for equal lengths).
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        if count == 0 { return true }
        return withUnsafeBytes { mine in
            other.withUnsafeBytes { theirs in sodium_memcmp(mine.baseAddress!, theirs.baseAddress!, count) == 0 }
        }
    }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "<redacted \(count) bytes>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .class) }
}

/// Counts readers of one secret and flips its pages between `PROT_NONE` and `PROT_READ`, so that
/// two threads reading at once never pull the protection out from under each other.
private final class ProtectionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var readers = 0

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func beginRead(_ region: UnsafeMutableRawPointer) {
        pthread_mutex_lock(mutex)
        if readers == 0 { sodium_mprotect_readonly(region) }
        readers += 1
        pthread_mutex_unlock(mutex)
    }

    func endRead(_ region: UnsafeMutableRawPointer) {
        pthread_mutex_lock(mutex)
        readers -= 1
        if readers == 0 { sodium_mprotect_noaccess(region) }
        pthread_mutex_unlock(mutex)
    }
}
