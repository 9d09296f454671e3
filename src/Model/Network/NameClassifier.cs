using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// The character-level classifier: an Elman RNN (the seed's default), GRU or LSTM read over each
/// name (optionally both ways and in stacked layers), and a linear layer on the state after the
/// last character, or on that and the mean and maximum of the states over the name's characters
/// (<see cref="Poolings"/>). The input projection of a
/// one-hot letter is a column lookup in the input matrix, which gives the same numbers as the
/// one-hot product without computing it. Returns logits in packed (sorted) order.
/// </summary>
public sealed class NameClassifier : nn.Module<PackedNames, Tensor>
{
    /// <summary>
    /// The alpha of every tensor addition. TorchSharp's <c>a + b</c> makes a temporary Scalar for it,
    /// which the garbage collector may finalize on another thread while the native call still reads
    /// it (seen here as a crash in c10::Scalar::toDouble with several workers in one process); this
    /// one lives as long as the process.
    /// </summary>
    private static readonly Scalar One = 1.ToScalar();
    private static readonly Scalar MinusOne = (-1).ToScalar();

    private readonly ModelConfig _config;
    private readonly Parameter[] _weights;
    private readonly Parameter? _embedding;
    private readonly int _first;

    private static Tensor Add(Tensor a, Tensor b) => a.add(b, One);
    private static Tensor Drop(Tensor x, Dropout? dropout) => dropout is null ? x : dropout.Apply(x);
    private static Tensor Sub(Tensor a, Tensor b) => a.add(b, MinusOne);

    public NameClassifier(ModelConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(NameClassifier))
    {
        _config = config;
        _weights = config.ParameterShapes()
            .Select(p => new Parameter(torch.zeros(p.Shape, dtype: dtype)))
            .ToArray();
        foreach (var ((name, _), parameter) in config.ParameterShapes().Zip(_weights))
            register_parameter(name, parameter);
        _embedding = config.Embedding > 0 ? _weights[0] : null;
        _first = config.Embedding > 0 ? 1 : 0;
    }

    /// <summary>The k-th weight of the cell of <paramref name="layer"/> reading forwards (direction 0) or backwards (1), after the embedding when there is one.</summary>
    private Parameter W(int layer, int direction, int k) =>
        _weights[_first + (layer * _config.Directions + direction) * (_config.Cell == Cells.Rnn ? 3 : 4) + k];

    /// <summary>
    /// What a layer reads at every packed position: letters (<paramref name="Tokens"/>, the first
    /// layer) or the states of the layer below (<paramref name="States"/>, one row per position).
    /// </summary>
    private sealed record Input(Tensor? Tokens, Tensor? States);

    /// <summary>
    /// The input projection of every packed position: for letters, a column of the input matrix (the
    /// one-hot product without computing it), or, with an embedding, the letter's embedding times the
    /// input matrix, dropout falling on the embedding, or on the projection when there is none; for
    /// the states of the layer below (dropped out already), their product with the input matrix.
    /// </summary>
    private Tensor Project(Tensor inputMatrix, Input input, Dropout? dropout)
    {
        if (input.States is { } below) return below.mm(inputMatrix.t());
        var tokens = input.Tokens!;
        if (_embedding is null) return Drop(inputMatrix.t().index_select(0, tokens), dropout);
        var embedded = Drop(_embedding.t().index_select(0, tokens), dropout);
        return embedded.mm(inputMatrix.t());
    }

    public ModelConfig Config => _config;

    /// <summary>The parameters in the module's parameter order (the order of the flat arrays).</summary>
    public IReadOnlyList<Parameter> OrderedParameters => _weights;

    public override Tensor forward(PackedNames batch) => Forward(batch, null);

    /// <summary>
    /// The logits, with dropout (when <paramref name="dropout"/> is given: training) on the input
    /// projections, between stacked layers and on what the output layer reads.
    /// </summary>
    public Tensor Forward(PackedNames batch, Dropout? dropout)
    {
        var input = new Input(torch.tensor(batch.Tokens, dtype: ScalarType.Int64), null);
        Tensor? reverseOrder = null;
        for (var layer = 0; layer < _config.Layers - 1; layer++)
        {
            // Every state of both directions at every position: the backward cell's packed rows are in
            // reversed reading order, and reverseOrder maps each packed position to its mirror.
            var forwards = new List<Tensor>();
            Read(batch, input, layer, 0, dropout, forwards);
            var below = torch.cat(forwards, 0);
            if (_config.Bidirectional)
            {
                reverseOrder ??= torch.tensor(batch.MirrorIndex, dtype: ScalarType.Int64);
                var backwards = new List<Tensor>();
                Read(batch, Reversed(batch, input, reverseOrder), layer, 1, dropout, backwards);
                below = torch.cat([below, torch.cat(backwards, 0).index_select(0, reverseOrder)], 1);
            }
            input = new Input(null, Drop(below, dropout));
        }
        var top = _config.Layers - 1;
        var features = Features(batch, input, top, 0, dropout);
        if (_config.Bidirectional)
        {
            var backwardInput = _config.Layers == 1
                ? new Input(torch.tensor(batch.ReversedTokens, dtype: ScalarType.Int64), null)
                : Reversed(batch, input, reverseOrder!);
            features = torch.cat([features, Features(batch, backwardInput, top, 1, dropout)], 1);
        }
        if (dropout is not null) features = dropout.Apply(features);
        return torch.addmm(_weights[^1], features, _weights[^2].t(), 1, 1);
    }

    /// <summary>The input read backwards, in the same packed layout.</summary>
    private static Input Reversed(PackedNames batch, Input input, Tensor reverseOrder) => input.States is { } states
        ? new Input(null, states.index_select(0, reverseOrder))
        : new Input(torch.tensor(batch.ReversedTokens, dtype: ScalarType.Int64), null);

    /// <summary>What the output layer reads of one direction: its last state, or [last state, mean, maximum over the letters' states].</summary>
    private Tensor Features(PackedNames batch, Input input, int layer, int direction, Dropout? dropout)
    {
        if (_config.Pooling == Poolings.Last) return Read(batch, input, layer, direction, dropout, null);
        var states = new List<Tensor>();
        var last = Read(batch, input, layer, direction, dropout, states);
        var (mean, max) = MeanAndMax(batch.BatchSizes, states);
        return torch.cat([last, mean, max], 1);
    }

    /// <summary>
    /// The mean and the maximum, per name, of the hidden states of its own letters: step t holds the
    /// states of the first <paramref name="sizes"/>[t] names (sorted order), so a step updates only
    /// the rows of the names still running.
    /// </summary>
    private static (Tensor Mean, Tensor Max) MeanAndMax(int[] sizes, List<Tensor> states)
    {
        var names = sizes[0];
        var dtype = states[0].dtype;
        var sum = states[0];
        var max = states[0];
        for (var t = 1; t < states.Count; t++)
        {
            var n = sizes[t];
            var head = states[t];
            if (n < names)
            {
                sum = torch.cat([Add(sum.narrow(0, 0, n), head), sum.narrow(0, n, names - n)], 0);
                max = torch.cat([torch.maximum(max.narrow(0, 0, n), head), max.narrow(0, n, names - n)], 0);
            }
            else
            {
                sum = Add(sum, head);
                max = torch.maximum(max, head);
            }
        }
        var lengths = new float[names];
        foreach (var n in sizes)
            for (var i = 0; i < n; i++) lengths[i]++;
        var mean = sum / torch.tensor(lengths, dtype: dtype).unsqueeze(1);
        return (mean, max);
    }

    /// <summary>The state of the cell of <paramref name="layer"/> and <paramref name="direction"/> after the last position of every name.</summary>
    /// <remarks>When <paramref name="states"/> is given, it receives the hidden state rows of every step.</remarks>
    private Tensor Read(PackedNames batch, Input input, int layer, int direction, Dropout? dropout, List<Tensor>? states) => _config.Cell switch
    {
        Cells.Rnn => Elman(batch, input, W(layer, direction, 0), W(layer, direction, 1), W(layer, direction, 2), dropout, states),
        Cells.Gru => Gru(batch, input, W(layer, direction, 0), W(layer, direction, 1), W(layer, direction, 2), W(layer, direction, 3), dropout, states),
        Cells.Lstm => Lstm(batch, input, W(layer, direction, 0), W(layer, direction, 1), W(layer, direction, 2), W(layer, direction, 3), dropout, states),
        _ => throw new InvalidOperationException($"unknown cell '{_config.Cell}'"),
    };

    /// <summary>s_t = tanh(U x_t + W s_{t-1} + b), s_0 = 0.</summary>
    private Tensor Elman(PackedNames batch, Input input, Tensor u, Tensor w, Tensor b, Dropout? dropout, List<Tensor>? states)
    {
        var inputs = Add(Project(u, input, dropout), b);
        var wt = w.t();
        return Unroll(batch, inputs, states, (x, state, n) =>
        {
            var h = state is null ? torch.tanh(x) : torch.tanh(torch.addmm(x, state[0], wt, 1, 1));
            return [h];
        });
    }

    /// <summary>PyTorch's GRU: r, z gates; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h.</summary>
    private Tensor Gru(PackedNames batch, Input input, Tensor wih, Tensor whh, Tensor bih, Tensor bhh, Dropout? dropout, List<Tensor>? states)
    {
        var inputs = Add(Project(wih, input, dropout), bih);
        var whht = whh.t();
        return Unroll(batch, inputs, states, (x, state, n) =>
        {
            var xs = x.chunk(3, 1);
            if (state is null)
            {
                var hs0 = bhh.chunk(3, 0);
                var r0 = torch.sigmoid(Add(xs[0], hs0[0]));
                var z0 = torch.sigmoid(Add(xs[1], hs0[1]));
                var n0 = torch.tanh(Add(xs[2], r0 * hs0[2]));
                return [Sub(n0, z0 * n0)];
            }
            var h = state[0];
            var hs = torch.addmm(bhh, h, whht, 1, 1).chunk(3, 1);
            var r = torch.sigmoid(Add(xs[0], hs[0]));
            var z = torch.sigmoid(Add(xs[1], hs[1]));
            var cand = torch.tanh(Add(xs[2], r * hs[2]));
            return [Add(cand, z * Sub(h, cand))];
        });
    }

    /// <summary>PyTorch's LSTM: i, f, g, o gates; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').</summary>
    private Tensor Lstm(PackedNames batch, Input input, Tensor wih, Tensor whh, Tensor bih, Tensor bhh, Dropout? dropout, List<Tensor>? states)
    {
        var inputs = Add(Add(Project(wih, input, dropout), bih), bhh);
        var whht = whh.t();
        return Unroll(batch, inputs, states, (x, state, n) =>
        {
            var gates = state is null ? x : torch.addmm(x, state[0], whht, 1, 1);
            var g = gates.chunk(4, 1);
            var i = torch.sigmoid(g[0]);
            var f = torch.sigmoid(g[1]);
            var cell = torch.tanh(g[2]);
            var o = torch.sigmoid(g[3]);
            var c = state is null ? i * cell : Add(f * state[1], i * cell);
            return [o * torch.tanh(c), c];
        });
    }

    /// <summary>
    /// Runs a cell over the packed batch. <paramref name="step"/> gets the input rows of step t, the
    /// previous state cut to the names still running (null at t = 0) and their number; element 0 of
    /// the state is the hidden state. Names that end are collected in sorted order;
    /// <paramref name="states"/>, when given, receives the hidden state rows of every step. The
    /// inputs are cut into steps, and a state into running and finished rows, by one split each: a
    /// narrow per use would make its backward pass add a zero-padded copy of the whole tensor per step.
    /// </summary>
    private static Tensor Unroll(PackedNames batch, Tensor inputs, List<Tensor>? states, Func<Tensor, Tensor[]?, int, Tensor[]> step)
    {
        var sizes = batch.BatchSizes;
        var perStep = inputs.split(sizes.Select(n => (long)n).ToArray(), 0);
        var finished = new List<Tensor>();
        Tensor[]? state = null;
        for (var t = 0; t < sizes.Length; t++)
        {
            var n = sizes[t];
            if (state is not null && n < sizes[t - 1])
            {
                var cut = new long[] { n, sizes[t - 1] - n };
                var hidden = state[0].split(cut, 0);
                finished.Add(hidden[1]);
                state = [hidden[0], .. state.Skip(1).Select(s => s.split(cut, 0)[0])];
            }
            state = step(perStep[t], state, n);
            states?.Add(state[0]);
        }
        finished.Add(state![0]);
        finished.Reverse();
        return finished.Count == 1 ? finished[0] : torch.cat(finished, 0);
    }
}
