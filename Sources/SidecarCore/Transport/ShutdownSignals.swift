import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write end of the self-pipe; the signal handler may touch nothing but globals.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// Turns SIGTERM and SIGINT into a call on an ordinary thread.
///
/// A `sigaction` handler writes the signal's number to a pipe (async-signal-safe) and a
/// dedicated thread reads it. This works whichever thread the kernel delivers the signal to,
/// unlike a Dispatch signal source, which on Linux sees a signal only if the receiving thread
/// has it blocked, and otherwise lets an ignored signal vanish.
public enum ShutdownSignals {
    /// Installs the handlers once; `onSignal` runs on the watcher thread, once per signal.
    public static func install(_ onSignal: @escaping @Sendable (Int32) -> Void) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        // A full pipe must never block the handler: the write end is non-blocking. (This pipe is
        // the sidecar's own; stdin and stdout are never touched.)
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        signalPipeWriteEnd = ends[1]
        let readEnd = ends[0]
        for number in [SIGTERM, SIGINT] {
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
            #else
            action.__sigaction_u.__sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
            #endif
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, nil)
        }
        signal(SIGPIPE, SIG_IGN)
        startDetachedThread(name: "signal-watcher") {
            var byte: UInt8 = 0
            while true {
                let count = read(readEnd, &byte, 1)
                if count == 1 {
                    onSignal(Int32(byte))
                } else if count < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
