import Synchronization

/// Fires once; later triggers are ignored. `wait` returns the first reason.
final class ShutdownLatch: Sendable {
    let state = Mutex<(reason: String?, waiter: CheckedContinuation<String, Never>?)>((nil, nil))

    func trigger(_ reason: String) {
        let waiter = state.withLock { state -> CheckedContinuation<String, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    func wait() async -> String {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> String? in
                if let reason = state.reason { return reason }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
