#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole reads and writes on a file descriptor: interrupted calls retried, short writes resumed,
/// reads bounded.
public enum Descriptor {
    /// Writes every byte of `buffer`. Retries `EINTR`; on a non-blocking descriptor that is full
    /// (`EAGAIN`), waits with `poll` for room rather than changing the descriptor's flags, which
    /// belong to whoever gave it to us.
    ///
    /// - Throws: the `errno` of the first other failure (`EPIPE` when the reader is gone, and
    ///   `EIO` when `write` returns 0).
    public static func writeAll(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer) throws(DescriptorError) {
        var offset = 0
        while offset < buffer.count {
            let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0, errno == EINTR {
                continue
            } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&entry, 1, 1000)
            } else {
                throw DescriptorError(code: written == 0 ? EIO : errno)
            }
        }
    }

    /// Writes every byte of `bytes` (see ``writeAll(_:_:)-(_,UnsafeRawBufferPointer)``).
    public static func writeAll(_ descriptor: Int32, _ bytes: some Collection<UInt8>) throws(DescriptorError) {
        let contiguous = Array(bytes)
        // `withUnsafeBytes` rethrows untyped errors, so the typed one is carried out by hand.
        let failure = contiguous.withUnsafeBytes { buffer -> DescriptorError? in
            do throws(DescriptorError) {
                try writeAll(descriptor, buffer)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// Writes `text` to standard error, best effort (a closed stderr is not worth failing for).
    public static func writeStandardError(_ text: String) {
        try? writeAll(STDERR_FILENO, Array(text.utf8))
    }

    /// Reads until end of file, at most `limit` bytes.
    ///
    /// - Throws: `EFBIG` when there are more than `limit` bytes (nothing past `limit + 1` is
    ///   read), or the `errno` of a failed `read`. `EINTR` is retried.
    public static func readAll(_ descriptor: Int32, limit: Int) throws(DescriptorError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            // One byte past the bound is enough to know the file is too large.
            let room = limit - bytes.count
            let wanted = room >= chunk.count ? chunk.count : room + 1
            let got = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress!, wanted) }
            if got < 0 {
                if errno == EINTR { continue }
                throw DescriptorError(code: errno)
            }
            if got == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<got])
            if bytes.count > limit { throw DescriptorError(code: EFBIG) }
        }
    }

    /// Fills `buffer` completely (a secret's guarded memory, say) from `descriptor`.
    ///
    /// - Throws: `EIO` when the file ends first, or the `errno` of a failed `read`.
    public static func readExactly(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(DescriptorError) {
        var offset = 0
        while offset < buffer.count {
            let got = systemRead(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if got < 0 {
                if errno == EINTR { continue }
                throw DescriptorError(code: errno)
            }
            if got == 0 { throw DescriptorError(code: EIO) }
            offset += got
        }
    }
}

// Free functions, so the libc calls are not shadowed by the methods above.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, bytes, count) }
private func systemRead(_ descriptor: Int32, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int { read(descriptor, bytes, count) }
