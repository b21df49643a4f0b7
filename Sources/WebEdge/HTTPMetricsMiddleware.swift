import Hummingbird

/// Counts every request and times it, into the daemon's own registry (not Hummingbird's
/// MetricsMiddleware: that one records through the global swift-metrics system, whose metrics come
/// without help text, which `promtool check metrics` refuses; docs in ../shared/notes). The route
/// label is the matched route's pattern (`/api/v1/runs/{id}`), never the raw path, so that scans of
/// unknown paths cannot grow the series without bound; those count as `unmatched`. Added before
/// every route: Hummingbird wraps only the routes added after a middleware.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: DaemonMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let method = request.method.rawValue
        do {
            let response = try await next(request, context)
            // Timed until the handler answered (status and headers); a live stream's body goes on after.
            metrics.observeRequest(
                method: method, route: context.endpointPath ?? "unmatched", status: response.status.code, duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.observeRequest(
                method: method, route: context.endpointPath ?? "unmatched", status: status, duration: ContinuousClock.now - start)
            throw error
        }
    }
}
