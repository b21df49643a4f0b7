/// Deciding whether a value crossed a line, and showing a line as configured,
/// without the noise of binary arithmetic and SI conversion.
enum Crossing {
    /// A value within this fraction of the line counts as AT the line: well
    /// below any clinical resolution, well above binary rounding (~1e-16 a step).
    static let relativeTolerance = 1e-9

    static func tolerance(of line: Double) -> Double { abs(line) * relativeTolerance }

    /// value >= line, where "equal up to rounding" counts as at the line.
    static func isAtOrAbove(_ value: Double, _ line: Double) -> Bool { value >= line - tolerance(of: line) }

    /// value > line, where "equal up to rounding" is not above it.
    static func isAbove(_ value: Double, _ line: Double) -> Bool { value > line + tolerance(of: line) }
}

/// Exact powers of ten (10^0 ... 10^22 are exact doubles).
private let exactPowersOfTen: [Double] = {
    var p: [Double] = [1]
    for _ in 1...22 { p.append(p[p.count - 1] * 10) }
    return p
}()

/// A number converted from SI back to its clinic unit, rounded to 12
/// significant digits: 1.7999999999999998 mg/kg/min is the 1.8 that was
/// configured. Twelve digits are far finer than any measurement on the wire,
/// so a measured value loses nothing.
func clinic(_ x: Double) -> Double {
    guard x.isFinite, x != 0 else { return x }
    let magnitude = abs(x)
    // Decimal exponent e: 10^e <= magnitude < 10^(e+1).
    var e = 0
    if magnitude >= 1 {
        while e < 22, exactPowersOfTen[e + 1] <= magnitude { e += 1 }
        if e == 22 { return x }
    } else {
        var k = 1
        while k <= 22, magnitude * exactPowersOfTen[k] < 1 { k += 1 }
        if k > 11 { return x }
        e = -k
    }
    let shift = 11 - e
    if shift >= 0 {
        let p = exactPowersOfTen[shift]
        return (x * p).rounded() / p
    }
    let p = exactPowersOfTen[-shift]
    return (x / p).rounded() * p
}
