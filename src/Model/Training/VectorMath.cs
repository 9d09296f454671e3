using System.Numerics;

namespace NameRnn.Model.Training;

/// <summary>
/// Element-wise float loops in SIMD registers. Each element gets the same single-precision
/// operation as in a scalar loop, so the results are the same bits; only reductions, whose order
/// matters, stay scalar (and are not here).
/// </summary>
public static class VectorMath
{
    /// <summary>target[i] += source[i].</summary>
    public static void AddTo(float[] target, float[] source)
    {
        if (source.Length != target.Length) throw new ArgumentException($"{source.Length} values added to {target.Length}");
        var i = 0;
        for (; i <= target.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(target, i) + new Vector<float>(source, i)).CopyTo(target, i);
        for (; i < target.Length; i++) target[i] += source[i];
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
}
