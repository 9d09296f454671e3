using System.Security.Cryptography;
using System.Text;
using NameRnn.Model.Data;

namespace NameRnn.Model.Network;

/// <summary>The recurrent cells NameRnn offers: the seed's Elman RNN, GRU and LSTM.</summary>
public static class Cells
{
    public const string Rnn = "rnn";
    public const string Gru = "gru";
    public const string Lstm = "lstm";
    public static readonly IReadOnlyList<string> All = [Rnn, Gru, Lstm];

    /// <summary>How many gate blocks of the hidden size the input and recurrent matrices hold.</summary>
    public static int Gates(string cell) => cell switch
    {
        Rnn => 1,
        Gru => 3,
        Lstm => 4,
        _ => throw new ArgumentException($"unknown cell '{cell}': expected one of {string.Join(", ", All)}", nameof(cell)),
    };
}

/// <summary>What the output layer reads: the state after the last letter, or that and the mean and maximum of the states over the name's letters.</summary>
public static class Poolings
{
    public const string Last = "last";
    public const string LastMeanMax = "last-mean-max";
    public static readonly IReadOnlyList<string> All = [Last, LastMeanMax];

    /// <summary>How many hidden-size vectors per reading direction the output layer sees.</summary>
    public static int Width(string pooling) => pooling switch
    {
        Last => 1,
        LastMeanMax => 3,
        _ => throw new ArgumentException($"unknown pooling '{pooling}': expected one of {string.Join(", ", All)}", nameof(pooling)),
    };
}

/// <summary>What defines a model's shape; saved with every model so that it loads without guessing.</summary>
/// <param name="Embedding">Size of a learned letter embedding before the cell; 0 = one-hot letters (the seed's model).</param>
/// <param name="Bidirectional">A second cell reads each name backwards; the output layer sees both directions.</param>
/// <param name="Pooling">What the output layer reads of each direction (<see cref="Poolings"/>): the last state, or the last state, the mean and the maximum over the letters' states.</param>
/// <param name="Layers">Stacked cells: layer l + 1 reads the hidden states of layer l (of both directions, when bidirectional) at every letter.</param>
public sealed record ModelConfig(string Cell, int Hidden, int Classes, int Inputs, int Embedding = 0, bool Bidirectional = false, string Pooling = Poolings.Last, int Layers = 1)
{
    public static ModelConfig Create(string cell, int hidden, int classes, int embedding = 0, bool bidirectional = false, string pooling = Poolings.Last, int layers = 1) =>
        new(cell, hidden, classes, Alphabet.Size, embedding, bidirectional, pooling, layers);

    /// <summary>Reading directions: 2 when bidirectional, else 1.</summary>
    public int Directions => Bidirectional ? 2 : 1;

    /// <summary>(name, shape) of every parameter, in the module's parameter order.</summary>
    public IReadOnlyList<(string Name, long[] Shape)> ParameterShapes()
    {
        var g = Cells.Gates(Cell) * Hidden;
        List<(string, long[])> CellShapes(string suffix, int input) => Cell == Cells.Rnn
            ? [("U" + suffix, [Hidden, input]), ("W" + suffix, [Hidden, Hidden]), ("b" + suffix, [Hidden])]
            : [("W_ih" + suffix, [g, input]), ("W_hh" + suffix, [g, Hidden]), ("b_ih" + suffix, [g]), ("b_hh" + suffix, [g])];
        var shapes = new List<(string, long[])>();
        if (Embedding > 0) shapes.Add(("E", [Embedding, Inputs]));
        for (var layer = 0; layer < Layers; layer++)
        {
            var suffix = layer == 0 ? "" : $"_l{layer}";
            var input = layer > 0 ? Directions * Hidden : Embedding > 0 ? Embedding : Inputs;
            shapes.AddRange(CellShapes(suffix, input));
            if (Bidirectional) shapes.AddRange(CellShapes(suffix + "_reverse", input));
        }
        shapes.Add(("V", [Classes, Directions * Poolings.Width(Pooling) * Hidden]));
        shapes.Add(("c", [Classes]));
        return shapes;
    }

    public int ParameterCount => ParameterShapes().Sum(p => (int)p.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>
    /// Identifies the model definition this build implements (alphabet, cells and parameter layout);
    /// a worker whose build differs would compute other gradients and is refused.
    /// </summary>
    public static string Format { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"namernn-model-v4|{Alphabet.Letters}|{string.Join(",", Cells.All)}|E?|U,W,b(,_reverse)?,V,c|W_ih,W_hh,b_ih,b_hh,V,c|_lN|{string.Join(",", Poolings.All)}")))[..16];

    /// <summary>A short hash of the configuration, so that peers can tell whether they build the same model.</summary>
    public string Hash()
    {
        var text = $"{Format}|{Cell}|{Hidden}|{Classes}|{Inputs}|{Embedding}|{Bidirectional}|{Pooling}|{Layers}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }
}
