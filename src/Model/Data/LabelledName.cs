namespace NameRnn.Model.Data;

/// <summary>A normalised name and the index of its language in <see cref="NamesData.Labels"/>.</summary>
public readonly record struct LabelledName(string Name, int Label);
