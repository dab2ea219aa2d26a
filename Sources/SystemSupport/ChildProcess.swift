#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What every `posix_spawn` of this process shares: one lock, pipes that children do not inherit,
/// and collecting a child's status.
///
/// Swift's Glibc has no `pipe2`, so a pipe is made and then marked close-on-exec. Between the two
/// calls another thread's spawn could hand the new ends to its child, which would then hold a
/// write end open and keep our reader from ever seeing end of file. So pipes are made, and
/// children spawned, under ``spawnLock``: one lock for the whole process, whichever module spawns.
public enum ChildProcess {
    /// Held while making pipes for a child and spawning it; it takes no other lock of ours.
    public static let spawnLock = PthreadLock()

    /// Adds to `actions` the closing, in the child, of every descriptor from 3 up: also those that
    /// other code of this process opened without close-on-exec (a test's own pipe, whose reader
    /// would otherwise wait for an end of file that a child holds back). glibc 2.34's
    /// `posix_spawn_file_actions_addclosefrom_np`, looked up by name because Swift's Glibc module
    /// does not declare it (it is behind `_GNU_SOURCE`); without it, nothing is added.
    #if os(Linux)
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        _ = closeFrom?(&actions, 3)
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: CloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: CloseFrom.self)
    }()
    #endif

    /// A pipe whose two ends are close-on-exec. Call it with ``spawnLock`` held.
    public static func closeOnExecPipe() throws(DescriptorError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw DescriptorError(code: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    /// The raw `waitpid` status if the child has ended (and is now collected), `nil` while it runs.
    public static func statusIfEnded(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status }
            if result < 0, errno == EINTR { continue }
            return nil
        }
    }

    /// Waits for the child to end and returns its raw `waitpid` status. Blocks: call it only
    /// off Swift's cooperative pool, or once the child is known to have ended or been killed.
    public static func waitForStatus(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return status
    }

    #if os(Linux)
    /// Starts `executable` with `arguments` and exactly `environment`. `stdio` are the descriptors
    /// that become the child's 0, 1 and 2; every other descriptor is closed in the child, which
    /// starts with default signal handling and no blocked signals, whatever this process set.
    /// Call it with ``spawnLock`` held. Returns the child's pid.
    public static func spawn(
        _ executable: String, arguments: [String], environment: [String: String], stdio: [Int32]
    ) throws(DescriptorError) -> pid_t {
        precondition(stdio.count == 3, "ChildProcess.spawn takes the child's stdin, stdout and stderr")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copy: exactly 0, 1 and 2 reach the program.
        for (index, descriptor) in stdio.enumerated() { posix_spawn_file_actions_adddup2(&actions, descriptor, Int32(index)) }
        closeInheritedDescriptors(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw DescriptorError(code: spawned) }
        return pid
    }
    #endif

    /// The exit code of a raw status, or 128 + the signal that ended the child (as shells
    /// report it). `WIFEXITED` / `WEXITSTATUS` spelled out, since the macros do not import.
    public static func exitCode(ofStatus status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// A plain pthread mutex with explicit `lock` and `unlock`, for a lock held across C calls.
public final class PthreadLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        return mutex
    }()

    public init() {}

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
}
