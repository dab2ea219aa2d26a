/// What `operation` returns, or nil when it takes longer than `limit`. The operation runs as a
/// child task and is cancelled at the limit (a task it awaits goes on on its own).
func value<T: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async -> T?) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await operation() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
