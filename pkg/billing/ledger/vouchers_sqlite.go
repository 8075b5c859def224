package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

var sqliteVoucherInsert, sqliteVoucherList, sqliteVoucherRevoke, sqliteVoucherGet, sqliteVoucherRedeem = voucherSQL(func(i int) string { return "?" + strconv.Itoa(i) })

func (s *sqliteStore) CreateVouchers(ctx context.Context, vs []Voucher) error {
	for _, v := range vs {
		if err := validVoucher(v); err != nil {
			return err
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, v := range vs {
			if _, err := tx.ExecContext(ctx, sqliteVoucherInsert, v.ID, v.CodeHash, int64(v.Amount), v.TenantID, v.Created.UnixMicro(), timePtrMicros(v.Expires)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: create %d vouchers: %w", len(vs), err)
	}
	return nil
}

func (s *sqliteStore) Vouchers(ctx context.Context, f VoucherFilter) ([]Voucher, error) {
	out, err := sqlCollect(ctx, s.db, scanVoucher, sqliteVoucherList, limitOrAll(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("ledger: vouchers: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) RevokeVoucher(ctx context.Context, id string, at time.Time) (Voucher, error) {
	var v Voucher
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		v, err = scanVoucher(tx.QueryRowContext(ctx, sqliteVoucherRevoke, id, at.UnixMicro()))
		if errors.Is(err, sql.ErrNoRows) {
			_, err = scanVoucher(tx.QueryRowContext(ctx, sqliteVoucherGet, id))
			return notRevocable(id, err, sql.ErrNoRows)
		}
		return err
	})
	if errors.Is(err, ErrVoucherNotFound) || errors.Is(err, ErrVoucherSpent) {
		return Voucher{}, err
	}
	if err != nil {
		return Voucher{}, fmt.Errorf("ledger: revoke voucher %s: %w", id, err)
	}
	return v, nil
}

func (s *sqliteStore) RedeemVoucher(ctx context.Context, r RedeemRequest) (Redemption, error) {
	if err := checkRedeem(r); err != nil {
		return Redemption{}, err
	}
	var out Redemption
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = redeemIn(r,
			func() (Voucher, error) {
				v, err := scanVoucher(tx.QueryRowContext(ctx, sqliteVoucherRedeem, r.CodeHash, r.TenantID, r.Time.UnixMicro()))
				if errors.Is(err, sql.ErrNoRows) {
					return Voucher{}, ErrInvalidVoucher
				}
				return v, err
			},
			func(es []Entry) (int, error) { return sqliteApplyTx(ctx, tx, &s.alerts, es) },
			func() (Account, error) {
				a := Account{TenantID: r.TenantID}
				err := tx.QueryRowContext(ctx, `SELECT balance, reserved FROM ledger_accounts WHERE tenant_id = ?`, r.TenantID).Scan(&a.Balance, &a.Reserved)
				return a, err
			})
		return err
	})
	if err != nil {
		return Redemption{}, redeemError(err)
	}
	return out, nil
}
