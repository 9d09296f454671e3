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

    /// <summary>
    /// Whether the seed's model (one Elman layer reading forwards, one-hot letters, the output layer on
    /// the last state) is differentiated by <see cref="ElmanGradients"/> instead of autograd.
    /// </summary>
    private readonly bool _byHand;

    /// <summary>The alpha of index_add_, alive as long as the process (see NameClassifier's One).</summary>
    private static readonly Scalar One = 1.ToScalar();

    /// <param name="autograd">Differentiate every model with autograd, also the one <see cref="ElmanGradients"/> handles (tests compare the two).</param>
    public GradientEngine(ModelConfig config, float[]? classWeights, double dropout = 0, double labelSmoothing = 0, bool autograd = false)
    {
        _byHand = !autograd && config is { Cell: Cells.Rnn, Layers: 1, Bidirectional: false, Embedding: 0, Pooling: Poolings.Last };
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
        var dropout = _dropout > 0 ? new Dropout(_dropout, noiseSeed) : null;
        Tensor logits, loss;
        float[] gradients;
        if (_byHand)
            (logits, loss, gradients) = ElmanGradients(packed, sortedLabels, dropout);
        else
        {
            logits = _module.Forward(packed, dropout);
            loss = Loss(logits, sortedLabels);
            _module.zero_grad();
            loss.backward();
            gradients = ParameterIo.FlattenGradients(_module);
        }
        var correct = (int)logits.argmax(1).eq(sortedLabels).sum().data<long>()[0];
        return new MicroBatchGradients(loss.data<float>()[0], names.Count, gradients, correct);
    }

    private Tensor Loss(Tensor logits, Tensor sortedLabels) => _labelSmoothing > 0
        ? SmoothedLoss(logits, sortedLabels)
        : nn.functional.cross_entropy(logits, sortedLabels, _classWeights, reduction: nn.Reduction.Sum);

    /// <summary>
    /// The seed's model, differentiated by hand through the recurrence: s_t = tanh(x_t + W s_{t−1}),
    /// x_t = U[:, letter] (dropped out) + b. The forward pass is the module's, computed in place in one
    /// buffer of all packed states; autograd differentiates only the output layer and the loss, from the
    /// last states. Back through time, g_t = ∂L/∂s_t ⊙ (1 − s_t²) and ∂L/∂s_{t−1} = g_t W for the
    /// names still running at t (a name that ends at t − 1 starts from the output layer's gradient);
    /// then ∂L/∂W = Σ_t g_tᵀ s_{t−1} in one product over all steps, ∂L/∂b = Σ g, and ∂L/∂U adds
    /// each g row (times its dropout mask) to its letter's column. Autograd records about ten
    /// operations per letter step and adds W's gradient step by step; this does four to six, without
    /// the graph (micro-batches of 32: about a quarter more names/s).
    /// </summary>
    private (Tensor Logits, Tensor Loss, float[] Gradients) ElmanGradients(PackedNames packed, Tensor sortedLabels, Dropout? dropout)
    {
        var parameters = _module.OrderedParameters;
        var (u, w, b, v, c) = (parameters[0], parameters[1], parameters[2], parameters[3], parameters[4]);
        var sizes = packed.BatchSizes;
        var stepRows = sizes.Select(n => (long)n).ToArray();
        var names = sizes[0];
        var tokens = torch.tensor(packed.Tokens, dtype: ScalarType.Int64);
        Tensor states, last;
        Tensor? inputMask = null;
        Tensor[] perStep;
        using (torch.no_grad())
        {
            // The module's forward pass (Project, Elman): the same operations, in place.
            var projected = u.t().index_select(0, tokens);
            if (dropout is not null)
            {
                inputMask = dropout.Mask(projected);
                projected = projected.mul(inputMask);
            }
            states = projected.add_(b);
            perStep = states.split(stepRows, 0);
            var wt = w.t();
            perStep[0].tanh_();
            for (var t = 1; t < sizes.Length; t++)
            {
                var previous = sizes[t] == sizes[t - 1] ? perStep[t - 1] : perStep[t - 1].narrow(0, 0, sizes[t]);
                perStep[t].addmm_(previous, wt, 1, 1).tanh_();
            }
            last = states.index_select(0, torch.tensor(packed.LastRows(), dtype: ScalarType.Int64));
        }
        last.requires_grad_(true);
        var features = dropout is null ? last : dropout.Apply(last);
        var logits = torch.addmm(c, features, v.t(), 1, 1);
        var loss = Loss(logits, sortedLabels);
        _module.zero_grad();
        loss.backward();
        using (torch.no_grad())
        {
            // Back through time: the rows of 'upstream' are ∂L/∂s of the names still running.
            var upstream = last.grad!;
            var g = states.mul(states).neg_().add_(1);
            var gradientPerStep = g.split(stepRows, 0);
            for (var t = sizes.Length - 1; t >= 0; t--)
            {
                var running = sizes[t] == names ? upstream : upstream.narrow(0, 0, sizes[t]);
                var gt = gradientPerStep[t].mul_(running);
                if (t > 0) running.addmm_(gt, w, 0, 1);
            }
            // One-letter names only: one step, no recurrence, no gradient for W.
            var gradW = sizes.Length == 1 ? torch.zeros_like(w) : RecurrentGradient(packed, g, states);
            var gradB = g.sum([0L]);
            var gradProjected = inputMask is null ? g : g.mul(inputMask);
            var gradU = torch.zeros(u.shape[1], u.shape[0], dtype: u.dtype).index_add_(0, tokens, gradProjected, One).t();
            var flat = torch.cat([gradU.reshape(-1), gradW.reshape(-1), gradB, v.grad!.reshape(-1), c.grad!.reshape(-1)], 0);
            return (logits, loss, ParameterIo.ToFloats(flat));
        }
    }

    /// <summary>∂L/∂W = Σ_{t ≥ 1} g_tᵀ s_{t−1}: the gradients of every step after the first against the states one step before, in one product.</summary>
    private static Tensor RecurrentGradient(PackedNames packed, Tensor g, Tensor states)
    {
        var previousRows = packed.PreviousRows();
        var previous = states.index_select(0, torch.tensor(previousRows, dtype: ScalarType.Int64));
        return g.narrow(0, packed.BatchSizes[0], previousRows.Length).t().mm(previous);
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
