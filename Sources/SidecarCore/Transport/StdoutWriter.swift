import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one and only writer of stdout. Every message is queued as a whole frame (JSON + newline)
/// and written by a dedicated thread with blocking writes, so frames never interleave, however
/// large, and a client that reads slowly only makes the queue wait, never a caller.
///
/// One shortcut: when stdout is a pipe, nothing is queued or being written, and the pipe has room
/// for the whole frame, the caller writes it itself. Such a write cannot block, and it saves waking
/// the writer thread for every response (the common case: a client that keeps up). Frames still
/// never interleave: the shortcut holds the same `writing` flag as the writer thread.
public final class StdoutWriter: Sendable {
    struct State {
        var queue: [[UInt8]] = []
        var queueHead = 0
        var closed = false
        var failed = false
        var writing = false
    }

    let fileDescriptor: Int32
    let state = Mutex(State())
    let condition = ConditionSignal()
    let onBrokenPipe: @Sendable () -> Void
    /// The pipe's capacity in bytes, or nil when stdout is not a pipe (no shortcut then).
    let pipeCapacity: Int?

    /// - Parameters:
    ///   - onBrokenPipe: called once if the reader of stdout goes away.
    public init(fileDescriptor: Int32 = STDOUT_FILENO, onBrokenPipe: @escaping @Sendable () -> Void = {}) {
        self.fileDescriptor = fileDescriptor
        self.onBrokenPipe = onBrokenPipe
        self.pipeCapacity = Self.pipeCapacity(of: fileDescriptor)
        startDetachedThread(name: "stdout-writer") { [self] in self.run() }
    }

    /// Queues one message; a newline is appended. `frame` must not contain a raw newline.
    public func send(_ frame: [UInt8]) {
        var framed = frame
        framed.append(0x0A)
        let fitsNow = fitsInPipe(framed.count)
        enum Route { case refused, queued, direct }
        let route = state.withLock { state -> Route in
            guard !state.closed, !state.failed else { return .refused }
            if fitsNow, !state.writing, state.queueHead >= state.queue.count {
                state.writing = true
                return .direct
            }
            state.queue.append(framed)
            return .queued
        }
        switch route {
        case .refused: return
        case .queued: condition.signal()
        case .direct:
            let ok = writeAll(framed)
            let queuedMeanwhile = state.withLock { state -> Bool in
                state.writing = false
                if !ok { state.failed = true }
                return state.queueHead < state.queue.count
            }
            if !ok {
                onBrokenPipe()
                condition.signal()  // let the writer thread see the failure and end
            } else if queuedMeanwhile {
                condition.signal()
            }
        }
    }

    /// Whether a frame of `count` bytes fits in the pipe now, so that writing it cannot block.
    /// Conservative: the kernel fills a pipe page by page, so two pages are kept in reserve.
    func fitsInPipe(_ count: Int) -> Bool {
        guard let pipeCapacity, count <= pipeCapacity / 4 else { return false }
        var unread: Int32 = 0
        guard ioctl(fileDescriptor, UInt(FIONREAD), &unread) == 0 else { return false }
        return Int(unread) + count + 2 * 4096 <= pipeCapacity
    }

    static func pipeCapacity(of fileDescriptor: Int32) -> Int? {
        #if os(Linux)
        var status = stat()
        guard fstat(fileDescriptor, &status) == 0, status.st_mode & S_IFMT == S_IFIFO else { return nil }
        let capacity = fcntl(fileDescriptor, 1032)  // F_GETPIPE_SZ
        return capacity > 0 ? Int(capacity) : nil
        #else
        return nil
        #endif
    }

    /// Waits until everything queued so far is written, at most `timeoutNanoseconds`.
    /// Returns false when the deadline passed first.
    @discardableResult
    public func flush(timeoutNanoseconds: UInt64) -> Bool {
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        while true {
            let done = state.withLock { $0.failed || ($0.queueHead >= $0.queue.count && !$0.writing) }
            if done { return true }
            if monotonicNanoseconds() >= deadline { return false }
            usleep(100)  // a tenth of a millisecond: shutdown ends as soon as the last frame is out
        }
    }

    /// Stops accepting messages; already queued ones are still written.
    public func close() {
        state.withLock { $0.closed = true }
        condition.signal()
    }

    func run() {
        while true {
            let next: [UInt8]? = state.withLock { state in
                // A caller may be writing a frame itself (the shortcut in send); it signals when done.
                if !state.failed, !state.writing, state.queueHead < state.queue.count {
                    let frame = state.queue[state.queueHead]
                    state.queue[state.queueHead] = []
                    state.queueHead += 1
                    if state.queueHead > 64, state.queueHead * 2 > state.queue.count {
                        state.queue.removeFirst(state.queueHead)
                        state.queueHead = 0
                    }
                    state.writing = true
                    return frame
                }
                return nil
            }
            guard let frame = next else {
                // Closed is not finished while frames wait behind a caller's direct write: that
                // caller signals when it is done, and the queue must still be written.
                let finished = state.withLock { $0.failed || ($0.closed && $0.queueHead >= $0.queue.count && !$0.writing) }
                if finished { return }
                condition.wait()
                continue
            }
            let ok = writeAll(frame)
            state.withLock {
                $0.writing = false
                if !ok { $0.failed = true }
            }
            if !ok {
                onBrokenPipe()
                return
            }
        }
    }

    /// Writes the whole frame (a non-blocking stdout from the parent is waited on with `poll`,
    /// its flags left alone); `false` when stdout is gone.
    func writeAll(_ frame: [UInt8]) -> Bool {
        (try? Descriptor.writeAll(fileDescriptor, frame)) != nil
    }
}

/// A counting wake-up signal for one waiting thread (a pthread condition with a pending count,
/// so a signal sent before the wait is not lost).
final class ConditionSignal: @unchecked Sendable {
    // Heap-allocated: pthread objects must not move in memory.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func signal() {
        pthread_mutex_lock(mutex)
        pending += 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while pending == 0 { pthread_cond_wait(condition, mutex) }
        pending = 0
        pthread_mutex_unlock(mutex)
    }
}
