using NameRnn.Model.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>The gradient sum and loss sum of one micro-batch.</summary>
/// <param name="Correct">How many names of the micro-batch the forward pass (with dropout) classified right.</param>
public sealed record MicroBatchGradients(double LossSum, int Count, float[] Gradients, int Correct = 0);

/// <summary>
/// Computes the summed gradient of the (class-weighted) cross-entropy of a micro-batch for given
/// parameters. All TorchSharp work happens synchronously inside one dispose scope per call;
/// gradients leave as a plain array in the module's parameter order.
/// </summary>
public sealed class GradientEngine : IDisposable
{
    private readonly NameClassifier _module;
    private readonly Tensor? _classWeights;
    private readonly double _dropout;
    private readonly double _labelSmoothing;
    private long _loadedVersion = -1;

    public GradientEngine(ModelConfig config, float[]? classWeights, double dropout = 0, double labelSmoothing = 0)
    {
        if (labelSmoothing is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "label smoothing must be in [0, 1)");
        _dropout = dropout;
        _labelSmoothing = labelSmoothing;
        _module = new NameClassifier(config);
        _module.train();
        if (classWeights is not null)
        {
            if (classWeights.Length != config.Classes)
                throw new ArgumentException($"{classWeights.Length} class weights for {config.Classes} classes", nameof(classWeights));
            _classWeights = torch.tensor(classWeights).DetachFromDisposeScope();
        }
    }

    public ModelConfig Config => _module.Config;

    /// <summary>The parameter version loaded last; -1 before any.</summary>
    public long LoadedVersion => _loadedVersion;

    public void LoadParameters(long version, float[] parameters)
    {
        ParameterIo.Load(_module, parameters);
        _loadedVersion = version;
    }

    /// <summary>The gradient sum of one micro-batch; <paramref name="noiseSeed"/> seeds its dropout masks.</summary>
    public MicroBatchGradients Compute(IReadOnlyList<string> names, IReadOnlyList<int> labels, long noiseSeed = 0)
    {
        if (_loadedVersion < 0) throw new InvalidOperationException("no parameters loaded");
        if (names.Count != labels.Count) throw new ArgumentException("names and labels differ in length");
        using var scope = torch.NewDisposeScope();
        var packed = PackedNames.Pack(names.Select(Alphabet.Encode).ToList());
        var sortedLabels = torch.tensor(packed.Order.Select(i => (long)labels[i]).ToArray(), dtype: ScalarType.Int64);
        using var dropout = _dropout > 0 ? new Dropout(_dropout, noiseSeed) : null;
        var logits = _module.Forward(packed, dropout);
        var loss = _labelSmoothing > 0
            ? SmoothedLoss(logits, sortedLabels)
            : nn.functional.cross_entropy(logits, sortedLabels, _classWeights, reduction: nn.Reduction.Sum);
        _module.zero_grad();
        loss.backward();
        var gradients = ParameterIo.FlattenGradients(_module);
        var correct = (int)logits.argmax(1).eq(sortedLabels).sum().data<long>()[0];
        return new MicroBatchGradients(loss.data<float>()[0], names.Count, gradients, correct);
    }

    /// <summary>
    /// Σ_i w_{y_i} [(1 − ε)(−log p_{i,y_i}) + ε · mean_c(−log p_{i,c})]: the cross-entropy against a
    /// target that puts 1 − ε on the label and ε evenly on all classes, weighted by the label's weight.
    /// </summary>
    private Tensor SmoothedLoss(Tensor logits, Tensor labels)
    {
        var logP = nn.functional.log_softmax(logits, 1);
        var nll = logP.gather(1, labels.unsqueeze(1)).squeeze(1).neg();
        var uniform = logP.mean([1]).neg();
        using var keep = (1 - _labelSmoothing).ToScalar();
        using var spread = _labelSmoothing.ToScalar();
        var perName = nll.mul(keep).add(uniform, spread);
        if (_classWeights is not null) perName = perName.mul(_classWeights.index_select(0, labels));
        return perName.sum();
    }

    public void Dispose()
    {
        _module.Dispose();
        _classWeights?.Dispose();
    }
}

/// <summary>Moves parameters and gradients between a module and flat float32 arrays.</summary>
public static class ParameterIo
{
    public static void Load(NameClassifier module, float[] flat)
    {
        if (flat.Length != module.Config.ParameterCount)
            throw new ArgumentException($"{flat.Length} parameter values for a model of {module.Config.ParameterCount}");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var source = torch.tensor(flat);
        var offset = 0L;
        foreach (var p in module.OrderedParameters)
        {
            var n = p.numel();
            p.copy_(source.narrow(0, offset, n).view(p.shape));
            offset += n;
        }
    }

    public static float[] FlattenGradients(NameClassifier module)
    {
        using var scope = torch.NewDisposeScope();
        return Concat(module.OrderedParameters.Select(p => p.grad ?? torch.zeros_like(p)));
    }

    private static float[] Concat(IEnumerable<Tensor> tensors) =>
        ToFloats(torch.cat(tensors.Select(t => t.reshape(-1)).ToArray(), 0).to_type(ScalarType.Float32));

    /// <summary>
    /// The values of a float32 tensor in row-major order, copied in one block. (TorchSharp's
    /// <c>data&lt;float&gt;().CopyTo</c> copies element by element and asks the native library for the
    /// element count at each one: about a tenth of local mode's CPU time at global batch 64.)
    /// </summary>
    public static float[] ToFloats(Tensor tensor)
    {
        if (tensor.dtype != ScalarType.Float32) throw new ArgumentException($"a tensor of {tensor.dtype}, not float32", nameof(tensor));
        var contiguous = tensor.contiguous();
        var values = new float[contiguous.numel()];
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(contiguous.bytes).CopyTo(values);
        return values;
    }
}
