package ui

import "github.com/charmbracelet/bubbles/key"

// keyMap is every binding, shown by `?`.
type keyMap struct {
	Help, Tab, Margin, Filter, Sort, SortRev, Enter, Back, Up, Down, Quit key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Tab:     key.NewBinding(key.WithKeys("tab", "shift+tab"), key.WithHelp("tab", "switch pane")),
		Margin:  key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "margin / ledger")),
		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Sort:    key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort by next column")),
		SortRev: key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "reverse sort")),
		Enter:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "tenant entries")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back / clear filter")),
		Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Tab, k.Margin, k.Filter, k.Sort, k.Enter, k.Help, k.Quit}
}

func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Tab, k.Margin, k.Up, k.Down, k.Enter, k.Back}, {k.Filter, k.Sort, k.SortRev, k.Help, k.Quit}}
}
