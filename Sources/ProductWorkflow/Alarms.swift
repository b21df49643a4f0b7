import RecordStore

extension ProductWorkflow {
    /// An acknowledgement by a signed-in user of any role, with its audit entry. Acknowledging says
    /// "seen"; the alarm stays until its condition clears, and a worse level needs a new one.
    public func acknowledgeAlarm(id: Int64, by credential: Credential, reason: String? = nil) async throws(ProductWorkflowError)
        -> AlarmRow
    {
        let user = try await authenticate(credential, for: .acknowledgeAlarm, entity: "alarm", entityID: String(id))
        guard
            let alarm = try await wrap({
                try await store.acknowledgeAlarm(id: id, by: user.name, reason: reason, atUnixMilliseconds: now())
            })
        else { throw .noActiveAlarm(id) }
        return alarm
    }
}
