#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An unlinked file a server's stdout writer writes to, emptied between uses. In /dev/shm
/// (memory) where there is one: a file on disk can stall a write for seconds while the kernel
/// throttles dirty pages, which looked like a hang.
public final class OutputFile: @unchecked Sendable {
    public let descriptor: Int32

    public init() {
        let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        var template = Array("\(directory)/sidecar-output-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(descriptor >= 0, "OutputFile: cannot create a temporary file in \(directory) (errno \(errno))")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.descriptor = descriptor
    }

    public func reset() {
        _ = ftruncate(descriptor, 0)
        _ = lseek(descriptor, 0, SEEK_SET)
    }

    /// Everything written so far.
    public func contents() -> [UInt8] {
        let size = Int(lseek(descriptor, 0, SEEK_END))
        guard size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, size, 0) }
        return Array(bytes.prefix(max(0, count)))
    }

    deinit { close(descriptor) }
}
