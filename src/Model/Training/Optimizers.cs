using System.Numerics;
namespace NameRnn.Model.Training;

/// <summary>Everything an optimizer carries from step to step, for checkpoints.</summary>
public sealed record OptimizerState(string Kind, long Steps, float[][] Buffers);

/// <summary>An optimizer over a flat float32 parameter array (the coordinator's master copy).</summary>
public interface IOptimizer
{
    /// <summary>Updates <paramref name="parameters"/> in place from the averaged gradient.</summary>
    void Step(float[] parameters, float[] gradient, double learningRate);
    OptimizerState State { get; }
}

public static class Optimizers
{
    public const string Sgd = "sgd";
    public const string Adam = "adam";
    public static readonly IReadOnlyList<string> All = [Sgd, Adam];

    public static IOptimizer Create(string kind, int parameterCount, double momentum, double weightDecay, OptimizerState? state = null) => kind switch
    {
        Sgd => new SgdMomentum(parameterCount, momentum, weightDecay, state),
        Adam => new AdamOptimizer(parameterCount, 0.9, 0.999, 1e-8, weightDecay, state),
        _ => throw new ArgumentException($"unknown optimizer '{kind}': expected one of {string.Join(", ", All)}", nameof(kind)),
    };

    internal static float[][] Restore(OptimizerState? state, string kind, int buffers, int parameterCount)
    {
        if (state is null) return Enumerable.Range(0, buffers).Select(_ => new float[parameterCount]).ToArray();
        if (state.Kind != kind || state.Buffers.Length != buffers || state.Buffers.Any(b => b.Length != parameterCount))
            throw new ArgumentException($"optimizer state of kind '{state.Kind}' does not fit a '{kind}' optimizer of {parameterCount} parameters");
        return state.Buffers.Select(b => (float[])b.Clone()).ToArray();
    }
}

/// <summary>PyTorch's SGD with momentum: buf = μ·buf + g (buf = g on the first step); p -= lr·buf.</summary>
public sealed class SgdMomentum(int parameterCount, double momentum, double weightDecay, OptimizerState? state) : IOptimizer
{
    private readonly float[] _buffer = Optimizers.Restore(state, Optimizers.Sgd, 1, parameterCount)[0];
    private long _steps = state?.Steps ?? 0;

    public void Step(float[] parameters, float[] gradient, double learningRate)
    {
        var mu = (float)momentum;
        var lr = (float)learningRate;
        var wd = (float)weightDecay;
        for (var i = 0; i < parameters.Length; i++)
        {
            var g = gradient[i] + wd * parameters[i];
            var b = mu == 0 ? g : _steps == 0 ? g : mu * _buffer[i] + g;
            _buffer[i] = b;
            parameters[i] -= lr * b;
        }
        _steps++;
    }

    public OptimizerState State => new(Optimizers.Sgd, _steps, [(float[])_buffer.Clone()]);
}

/// <summary>PyTorch's Adam, bias-corrected, with decoupled weight decay (AdamW: p -= lr·wd·p before the update).</summary>
public sealed class AdamOptimizer(int parameterCount, double beta1, double beta2, double epsilon, double weightDecay, OptimizerState? state) : IOptimizer
{
    private readonly float[][] _moments = Optimizers.Restore(state, Optimizers.Adam, 2, parameterCount);
    private long _steps = state?.Steps ?? 0;

    public void Step(float[] parameters, float[] gradient, double learningRate)
    {
        _steps++;
        var (m, v) = (_moments[0], _moments[1]);
        var b1 = (float)beta1;
        var b2 = (float)beta2;
        var wd = (float)weightDecay;
        var correction1 = 1 - Math.Pow(beta1, _steps);
        var correction2 = Math.Sqrt(1 - Math.Pow(beta2, _steps));
        var stepSize = (float)(learningRate / correction1);
        var eps = (float)epsilon;
        var c2 = (float)correction2;
        var decay = (float)(1 - learningRate * weightDecay);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // The same single-precision operations in the same order as the loop below: the same bits.
            var (vb1, vb2, v1b1, v1b2) = (new Vector<float>(b1), new Vector<float>(b2), new Vector<float>(1 - b1), new Vector<float>(1 - b2));
            var (vstep, vc2, veps, vdecay) = (new Vector<float>(stepSize), new Vector<float>(c2), new Vector<float>(eps), new Vector<float>(decay));
            for (; i <= parameters.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var g = new Vector<float>(gradient, i);
                var p = new Vector<float>(parameters, i);
                if (wd != 0) p *= vdecay;
                var mi = vb1 * new Vector<float>(m, i) + v1b1 * g;
                var vi = vb2 * new Vector<float>(v, i) + v1b2 * g * g;
                p -= vstep * mi / (Vector.SquareRoot(vi) / vc2 + veps);
                mi.CopyTo(m, i);
                vi.CopyTo(v, i);
                p.CopyTo(parameters, i);
            }
        }
        for (; i < parameters.Length; i++)
        {
            var g = gradient[i];
            if (wd != 0) parameters[i] *= decay;
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            parameters[i] -= stepSize * m[i] / (MathF.Sqrt(v[i]) / c2 + eps);
        }
    }

    public OptimizerState State => new(Optimizers.Adam, _steps, _moments.Select(b => (float[])b.Clone()).ToArray());
}
