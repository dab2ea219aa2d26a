#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fits the connection cap to the process's file-descriptor limit, so that the gateway refuses or
/// replaces connections itself before `accept` starts failing with `EMFILE` (which would take
/// `/healthz` and every agent down with it).
public enum DescriptorBudget {
    /// Descriptors kept for everything but client connections: the database and its WAL and
    /// shared-memory files for the writer and up to 8 readers, the listening socket, the event
    /// loops' epoll and event descriptors, stdio and logs.
    public static let reserve = 128

    /// Raises the soft `RLIMIT_NOFILE` as far as `maxConnections` needs (never past the hard
    /// limit), and returns the cap that fits: `maxConnections`, or less when the hard limit is
    /// lower and `explicit` is false. With `explicit` (the operator chose the cap), a cap that does
    /// not fit throws a one-line message instead.
    public static func fit(maxConnections: Int, explicit: Bool) throws(DescriptorBudgetError) -> (connections: Int, note: String?) {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0 else { return (maxConnections, nil) }
        let needed = rlim_t(maxConnections + reserve)
        if limit.rlim_cur != unlimited, limit.rlim_cur < needed {
            var raised = limit
            raised.rlim_cur = limit.rlim_max == unlimited ? needed : min(needed, limit.rlim_max)
            if setrlimit(resourceNoFile, &raised) == 0 { limit = raised }
        }
        let available = limit.rlim_cur == unlimited ? Int.max : Int(limit.rlim_cur)
        if available >= maxConnections + reserve { return (maxConnections, nil) }
        let fitting = available - reserve
        guard !explicit, fitting >= 16 else {
            throw DescriptorBudgetError(
                message:
                    "--max-connections \(maxConnections) needs \(maxConnections + reserve) file descriptors but this process may open \(available); raise the limit (ulimit -n) or lower --max-connections"
            )
        }
        return (fitting, "the file-descriptor limit is \(available), so at most \(fitting) connections are kept open (raise it with ulimit -n)")
    }

    #if canImport(Glibc)
    static let resourceNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    static let unlimited = rlim_t.max
    #else
    static let resourceNoFile = RLIMIT_NOFILE
    static let unlimited = RLIM_INFINITY
    #endif
}

public struct DescriptorBudgetError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
