#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts a named OS thread for work that blocks (stdin reads, stdout writes, the curl event loop),
/// so that it never occupies one of Swift concurrency's few cooperative threads.
public func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) {
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let result = pthread_create(
        &thread, &attributes,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
    pthread_attr_destroy(&attributes)
    precondition(result == 0, "could not start thread \(name): error \(result)")
}

/// Monotonic time in nanoseconds.
@inline(__always) public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// A lock over a value with `Synchronization.Mutex`'s `withLock`, on a pthread mutex.
///
/// It exists for ThreadSanitizer builds (`-Xswiftc -DTHREAD_SANITIZER_LOCKS`, see
/// docs/reliability-fuzzing.md): `Synchronization.Mutex` locks with futexes inside an
/// uninstrumented library, so TSan sees none of its happens-before edges and reports every access
/// it guards as a race. A module that uses `Mutex` declares, under that flag,
/// `typealias Mutex = PthreadMutex`; being the module's own declaration, the alias is found before
/// the imported `Synchronization.Mutex`. Normal builds use `Synchronization.Mutex`.
public final class PthreadMutex<Value>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
