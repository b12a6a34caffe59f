/// What the ``WorkerPool`` tells about each task, so that state lives elsewhere.
///
/// Batch-shaped: a batch's tasks change state together, in one write.
public protocol DeliveryLifecycle: Sendable {
    /// Workers are about to push `tasks`.
    ///
    /// - Returns: those still to push (the others were deleted meanwhile).
    func willPush(_ tasks: [UploadTask]) -> [UploadTask]
    /// A transient failure; the task goes back to the queue after `delay` seconds.
    func willRetry(_ task: UploadTask, after failure: PushFailure, delay: Double)
    /// The tasks ended for good.
    ///
    /// - Returns: false when the outcome could not be recorded: the tasks are then queued
    ///   again (pushed once more, at least once) rather than forgotten unrecorded.
    func finished(_ tasks: [UploadTask], _ outcome: DeliveryOutcome) -> Bool
}
