#if canImport(Glibc)
import Glibc
#endif

/// How the process allocates large buffers (a multi-megabyte tool result and its frame).
enum LargeAllocations {
    /// glibc's malloc raises its mmap threshold each time a large mmapped block is freed (up to
    /// 32 MiB), after which large buffers come from the heap arenas and stay resident once freed:
    /// after three 10 MB results the sidecar held 123 MB instead of 21 MB. A fixed threshold (which
    /// also turns the raising off) keeps every block of 512 KiB or more on mmap, so it goes back to
    /// the system when it is freed. It stays above libcurl's 256 KiB receive buffer, which is
    /// allocated for every transfer: below it, each call would cost an mmap and a munmap.
    static func returnToTheSystemWhenFreed() {
        #if canImport(Glibc)
        // <malloc.h> is not part of the Glibc module; mallopt is looked up instead.
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: MallOpt.self)(mmapThreshold, 512 * 1024)
        #endif
    }
}
