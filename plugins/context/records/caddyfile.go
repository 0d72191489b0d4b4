package records

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	records [<dir>] {
//	    dir <dir>
//	    file <entity> <file.json|file.csv|dir>
//	    columns <entity> <column...>
//	}
//
// With neither dir nor file, the embedded sample data is served. Unknown
// subdirectives are errors.
func (s *Source) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		s.Dir = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "dir":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.Dir = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "file":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("file: expected <entity> <path>, got %d arguments", len(args))
			}
			if _, ok := entitySets[args[0]]; !ok {
				return d.Errf("file: unknown entity %q", args[0])
			}
			if s.Files == nil {
				s.Files = map[string]string{}
			}
			if _, dup := s.Files[args[0]]; dup {
				return d.Errf("file: entity %q given twice", args[0])
			}
			s.Files[args[0]] = args[1]
		case "columns":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("columns: expected <entity> <column...>")
			}
			if _, ok := entitySets[args[0]]; !ok {
				return d.Errf("columns: unknown entity %q", args[0])
			}
			if s.Columns == nil {
				s.Columns = map[string][]string{}
			}
			s.Columns[args[0]] = append(s.Columns[args[0]], args[1:]...)
		default:
			return d.Errf("unrecognized records subdirective %q", d.Val())
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Source)(nil)
