import Synchronization

/// What `operation` returns, or nil when it takes longer than `limit`; either way this returns
/// by then. The operation runs in a task of its own, cancelled at the limit; it may go on after
/// that (awaiting another task's value, say), but nobody waits for it. (A task group would: it
/// waits for its children, so an operation stuck on a gateway that accepts and never answers
/// held `initialize` for the whole request timeout.)
func value<T: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async -> T?) async -> T? {
    await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        let answer = FirstAnswer(continuation)
        let work = Task { answer.resume(with: await operation()) }
        Task {
            try? await Task.sleep(for: limit)
            if answer.resume(with: nil) { work.cancel() }
        }
    }
}

/// A continuation resumed by whichever answer comes first; later answers are dropped.
private final class FirstAnswer<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) { self.continuation = Mutex(continuation) }

    /// Resumes with `value` unless an answer came first; true if this one was first.
    @discardableResult
    func resume(with value: Value) -> Bool {
        guard
            let waiting = continuation.withLock({ state in
                defer { state = nil }; return state
            })
        else { return false }
        waiting.resume(returning: value)
        return true
    }
}
