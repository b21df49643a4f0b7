/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and fully determined
/// by its seed, which is what a reproducible simulation needs. Not for
/// cryptography.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// An independent stream for another purpose (e.g. wire faults), so that
    /// drawing from one never shifts the other.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SeededGenerator(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        state = mixer.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits. Our own rather than
    /// `Double.random(in:using:)`, whose algorithm the standard library may change.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { nextUnit() < p }

    /// Approximately normal noise, mean 0, standard deviation `sigma`
    /// (Irwin-Hall sum of three uniforms; bounded at +/-3 sigma, which suits
    /// instrument noise better than an unbounded tail).
    public mutating func noise(sigma: Double) -> Double {
        let sum = nextUnit() + nextUnit() + nextUnit()
        return (sum - 1.5) * 2 * sigma
    }
}
