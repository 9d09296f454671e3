using System.Numerics;
using System.Runtime.Intrinsics;

namespace NameRnn.Model.Training;

/// <summary>
/// Element-wise float loops in SIMD registers. Each element gets the same single-precision
/// operation as in a scalar loop, so the results are the same bits. A reduction, whose result
/// depends on the order of its additions, adds in an order of its own that does not depend on the
/// machine's vector width (<see cref="SumOfSquares"/>).
/// </summary>
public static class VectorMath
{
    /// <summary>A new array of a[i] + b[i].</summary>
    public static float[] Sum(float[] a, float[] b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"{a.Length} values added to {b.Length}");
        var sum = GC.AllocateUninitializedArray<float>(a.Length);
        var i = 0;
        for (; i <= a.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(a, i) + new Vector<float>(b, i)).CopyTo(sum, i);
        for (; i < a.Length; i++) sum[i] = a[i] + b[i];
        return sum;
    }

    /// <summary>
    /// target[i] = (0 + source[i]) · factor, one rounding per operation as written (the 0 + turns a −0
    /// into +0, as adding the value to a zeroed array did); <paramref name="target"/> may be
    /// <paramref name="source"/>.
    /// </summary>
    public static void ScaleFromZero(float[] target, float[] source, float factor)
    {
        if (source.Length != target.Length) throw new ArgumentException($"{source.Length} values scaled into {target.Length}");
        var (zero, f) = (Vector<float>.Zero, new Vector<float>(factor));
        var i = 0;
        for (; i <= target.Length - Vector<float>.Count; i += Vector<float>.Count)
            ((zero + new Vector<float>(source, i)) * f).CopyTo(target, i);
        for (; i < target.Length; i++) target[i] = (0f + source[i]) * factor;
    }

    /// <summary>values[i] *= factor.</summary>
    public static void Scale(float[] values, float factor)
    {
        var f = new Vector<float>(factor);
        var i = 0;
        for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(values, i) * f).CopyTo(values, i);
        for (; i < values.Length; i++) values[i] *= factor;
    }

    /// <summary>Whether every value is finite (neither NaN nor infinite).</summary>
    public static bool AllFinite(float[] values)
    {
        var i = 0;
        var max = new Vector<float>(float.MaxValue);
        for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
        {
            // NaN compares false, an infinity is above MaxValue: either fails the test.
            if (!Vector.LessThanOrEqualAll(Vector.Abs(new Vector<float>(values, i)), max)) return false;
        }
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return false;
        return true;
    }

    /// <summary>
    /// Σ values[i]² in double precision, in a fixed order: eight running sums, of the squares of the
    /// elements i with i mod 8 = 0, 1, …, 7 up to the last whole group of eight, added as
    /// ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), then the squares of the remaining elements one
    /// by one. The same bits on every machine (a float's square is exact in double, and each addition is
    /// one IEEE double addition whatever the vector width), in about a sixth of the time of one running
    /// sum, whose additions each wait for the one before.
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> values)
    {
        var low = Vector256<double>.Zero;
        var high = Vector256<double>.Zero;
        var i = 0;
        for (; i <= values.Length - 8; i += 8)
        {
            var (l, h) = Vector256.Widen(Vector256.Create(values.Slice(i, 8)));
            low += l * l;
            high += h * h;
        }
        var pairs = low + high;
        var sum = (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]);
        for (; i < values.Length; i++) sum += (double)values[i] * values[i];
        return sum;
    }
}
