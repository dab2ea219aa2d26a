#if THREAD_SANITIZER_LOCKS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Only in ThreadSanitizer builds (`-Xswiftc -DTHREAD_SANITIZER_LOCKS`, see docs/reliability-fuzzing.md):
/// (A copy of Sources/SidecarCore/Support/ThreadSanitizerMutex.swift for this module.)
/// `Synchronization.Mutex` locks with futexes inside an uninstrumented library, so TSan sees none
/// of its happens-before edges and reports every access it guards as a race. This stand-in, found
/// first by name lookup in this module, has the same `withLock` over a pthread mutex, which TSan
/// understands. Normal builds use `Synchronization.Mutex`.
final class Mutex<Value>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
#endif
