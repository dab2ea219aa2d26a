#if THREAD_SANITIZER_LOCKS
import SystemSupport

/// ThreadSanitizer builds lock with a pthread mutex TSan understands; this module's own alias is
/// found before `Synchronization.Mutex` (see `SystemSupport.PthreadMutex`).
typealias Mutex = PthreadMutex
#endif
