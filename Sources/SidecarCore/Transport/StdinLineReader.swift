import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the stdin reader hands to the server, in the order it arrived.
public enum StdinEvent: Sendable {
    /// One complete line, without its newline (and without a trailing carriage return).
    case line([UInt8])
    /// A line longer than the limit; its bytes were discarded up to the next newline.
    case oversized(byteCount: Int)
    /// End of input (or an unrecoverable read error): the client has gone.
    case endOfInput
}

/// Reads newline-delimited messages from a file descriptor on a dedicated thread with plain
/// blocking reads. It never changes the descriptor's flags: stdin is shared with the parent
/// process. If the parent handed over a non-blocking descriptor, it waits with poll() instead.
public final class StdinLineReader: Sendable {
    let fileDescriptor: Int32
    let maximumLineBytes: Int

    public init(fileDescriptor: Int32 = STDIN_FILENO, maximumLineBytes: Int) {
        self.fileDescriptor = fileDescriptor
        self.maximumLineBytes = maximumLineBytes
    }

    /// Starts the reader thread. `handler` runs on that thread, one event at a time, so the order of
    /// messages is kept (a cancellation is always seen after the request it cancels).
    public func start(_ handler: @escaping @Sendable (StdinEvent) -> Void) {
        let fileDescriptor = fileDescriptor
        let maximumLineBytes = maximumLineBytes
        startDetachedThread(name: "stdin-reader") {
            var framer = LineFramer(maximumLineBytes: maximumLineBytes)
            let chunkSize = 64 * 1024
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 1)
            defer { chunk.deallocate() }
            while true {
                let count = read(fileDescriptor, chunk.baseAddress, chunkSize)
                if count > 0 {
                    framer.append(UnsafeRawBufferPointer(rebasing: chunk[0..<count]), emit: handler)
                } else if count == 0 {
                    framer.finish(emit: handler)
                    handler(.endOfInput)
                    return
                } else if errno == EINTR {
                    continue
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
                    _ = poll(&descriptor, 1, -1)
                } else {
                    handler(.endOfInput)
                    return
                }
            }
        }
    }
}

/// Splits a byte stream into lines, bounding the size of each. Separate from the reader so the
/// fuzz and unit tests can drive it directly.
public struct LineFramer {
    let maximumLineBytes: Int
    var pending: [UInt8] = []
    var discarding = false
    var discardedCount = 0

    public init(maximumLineBytes: Int) { self.maximumLineBytes = maximumLineBytes }

    public mutating func append(_ bytes: UnsafeRawBufferPointer, emit: (StdinEvent) -> Void) {
        var start = 0
        while start < bytes.count {
            let remaining = UnsafeRawBufferPointer(rebasing: bytes[start...])
            guard let newline = remaining.firstIndex(of: 0x0A) else {
                accumulate(remaining, emit: emit)
                return
            }
            accumulate(UnsafeRawBufferPointer(rebasing: remaining[remaining.startIndex..<newline]), emit: emit)
            endLine(emit: emit)
            start += newline + 1
        }
    }

    /// Flushes a last line that had no newline before end of input.
    public mutating func finish(emit: (StdinEvent) -> Void) {
        if !pending.isEmpty || discarding { endLine(emit: emit) }
    }

    mutating func accumulate(_ bytes: UnsafeRawBufferPointer, emit: (StdinEvent) -> Void) {
        if discarding {
            discardedCount += bytes.count
            return
        }
        if pending.count + bytes.count > maximumLineBytes {
            discarding = true
            discardedCount = pending.count + bytes.count
            pending = []
            return
        }
        pending.append(contentsOf: bytes)
    }

    mutating func endLine(emit: (StdinEvent) -> Void) {
        if discarding {
            emit(.oversized(byteCount: discardedCount))
            discarding = false
            discardedCount = 0
            return
        }
        if pending.last == 0x0D { pending.removeLast() }
        let line = pending
        pending = []
        // Blank lines carry no message; skip them quietly.
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
        emit(.line(line))
    }
}
